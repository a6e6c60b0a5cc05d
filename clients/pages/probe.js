// Runs on an origin the server does not allow. Each attempt reports whether
// this page could read the answer; the browser's CORS checks decide.
window.attempts = async (api) => {
  const attempt = async (name, request) => {
    try {
      const res = await request();
      return { name, read: true, status: res.status, body: await res.text() };
    } catch (e) {
      return { name, read: false, error: String(e) };
    }
  };
  const form = new FormData();
  form.append('operations', JSON.stringify({
    query: 'mutation($input: UploadReportFileInput!, $file: Upload!) { uploadReportFile(input: $input, file: $file) { id } }',
    variables: { input: { sttId: 1, fiscalYear: 2026, quarter: 'Q3', section: 'AGGREGATE_DATA' }, file: null },
  }));
  form.append('map', JSON.stringify({ 0: ['variables.file'] }));
  form.append('0', new Blob(['stolen session upload\n'], { type: 'text/plain' }), 'probe.txt');
  return [
    await attempt('json-post', () =>
      fetch(`${api}/graphql`, {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ me { subject } }' }),
      })),
    await attempt('get-query', () =>
      fetch(`${api}/graphql?query=${encodeURIComponent('{ me { subject } }')}`, { credentials: 'include' })),
    await attempt('upload', () =>
      fetch(`${api}/graphql`, {
        method: 'POST',
        credentials: 'include',
        headers: { 'apollo-require-preflight': 'true' },
        body: form,
      })),
    await attempt('download-list', () =>
      fetch(`${api}/graphql?query=${encodeURIComponent('{ reportFiles { edges { node { downloadUrl } } } }')}`, {
        credentials: 'include',
      })),
  ];
};
