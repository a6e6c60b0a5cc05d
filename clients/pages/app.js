// The frontend's side of the integration, as the README describes it. The
// token is used once, for `login`; after that the session is the HttpOnly
// cookie, which scripts cannot read and every request sends
// (`credentials: 'include'`).
const api = new URLSearchParams(location.search).get('api');
const $ = (id) => document.getElementById(id);
const status = (text) => ($('status').textContent = text);

async function graphql(query, variables = {}) {
  const res = await fetch(`${api}/graphql`, {
    method: 'POST',
    credentials: 'include',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(body.errors.map((e) => e.extensions?.code ?? e.message).join(', '));
  return body.data;
}

async function listFiles() {
  const data = await graphql(`{
    reportFiles(first: 50) { totalCount edges { node { id originalFilename sizeBytes sha256 downloadUrl } } }
  }`);
  const list = $('files');
  list.replaceChildren();
  for (const { node } of data.reportFiles.edges) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    // downloadUrl is a path on the API's origin.
    a.href = new URL(node.downloadUrl, api).href;
    a.textContent = node.originalFilename;
    a.dataset.sha256 = node.sha256;
    li.append(a);
    list.append(li);
  }
  status(`${data.reportFiles.totalCount} files`);
}

$('signin').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('token');
  const token = input.value.trim();
  input.value = '';
  try {
    const data = await graphql('mutation($token: String!) { login(token: $token) { subject role } }', { token });
    $('who').textContent = `${data.login.subject} (${data.login.role})`;
    await listFiles();
  } catch (e) {
    status(`sign-in failed: ${e.message}`);
  }
});

$('logout').addEventListener('click', async () => {
  await graphql('mutation { logout }');
  $('who').textContent = '';
  status('signed out');
});

// A GraphQL multipart request, as apollo-upload-client builds it, with the
// header that makes it preflighted (and so unforgeable by an HTML form).
$('upload').addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = $('file').files[0];
  const form = new FormData();
  form.append(
    'operations',
    JSON.stringify({
      query: `mutation($input: UploadReportFileInput!, $file: Upload!) {
        uploadReportFile(input: $input, file: $file) { id version sha256 originalFilename }
      }`,
      variables: {
        input: { sttId: 1, fiscalYear: 2026, quarter: 'Q2', section: 'CLOSED_CASE_DATA' },
        file: null,
      },
    }),
  );
  form.append('map', JSON.stringify({ 0: ['variables.file'] }));
  form.append('0', file, file.name);
  try {
    const res = await fetch(`${api}/graphql`, {
      method: 'POST',
      credentials: 'include',
      headers: { 'apollo-require-preflight': 'true' },
      body: form,
    });
    const body = await res.json();
    if (body.errors) throw new Error(body.errors.map((e) => e.extensions?.code).join(', '));
    const f = body.data.uploadReportFile;
    $('uploaded').textContent = `${f.originalFilename} v${f.version} ${f.sha256}`;
    await listFiles();
  } catch (e) {
    status(`upload failed: ${e.message}`);
  }
});
