// Issue: the frontend uploads with Apollo Client and apollo-upload-client.
// The real packages upload a file through uploadReportFile, read it back with
// a query, and download it through downloadUrl with the same bytes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';

import { sha256, startServer } from '../harness.js';

const UPLOAD = gql`
  mutation Upload($input: UploadReportFileInput!, $file: Upload!) {
    uploadReportFile(input: $input, file: $file) {
      id
      version
      originalFilename
      sizeBytes
      sha256
      downloadUrl
    }
  }
`;

const READ = gql`
  query Read($id: ID!) {
    reportFile(id: $id) {
      id
      originalFilename
      sizeBytes
      sha256
      downloadUrl
      uploadedBy { subject }
    }
  }
`;

let server;
let token;

before(async () => {
  server = await startServer();
  token = server.user('apollo-analyst', 'DATA_ANALYST', 1);
});

after(async () => {
  await server?.stop();
});

/**
 * The client a frontend would build; `useGETForQueries` sends queries as GET.
 * `sent` records each request's method (and whether its body is multipart).
 */
function client({ useGETForQueries = false, sent = [] } = {}) {
  const recording = (url, init) => {
    sent.push(init.body instanceof FormData ? `${init.method} multipart` : init.method);
    return fetch(url, init);
  };
  return new ApolloClient({
    cache: new InMemoryCache(),
    link: new UploadHttpLink({
      uri: `${server.base}/graphql`,
      useGETForQueries,
      fetch: recording,
      headers: { authorization: `Bearer ${token}`, 'apollo-require-preflight': 'true' },
    }),
  });
}

const bytes = Buffer.from(
  Array.from({ length: 20_000 }, (_, i) => `${i}\tcase\t${(i * 31) % 997}\n`).join(''),
);

for (const useGETForQueries of [false, true]) {
  test(`uploads, reads back and downloads the same bytes (queries over ${useGETForQueries ? 'GET' : 'POST'})`, async () => {
    const sent = [];
    const apollo = client({ useGETForQueries, sent });
    const file = new File([bytes], 'apollo upload.ts01', { type: 'text/plain' });
    const input = {
      sttId: 1,
      fiscalYear: 2026,
      quarter: useGETForQueries ? 'Q3' : 'Q4',
      section: 'STRATUM_DATA',
    };

    const { data: uploaded } = await apollo.mutate({ mutation: UPLOAD, variables: { input, file } });
    const stored = uploaded.uploadReportFile;
    assert.equal(stored.originalFilename, 'apollo upload.ts01');
    assert.equal(stored.version, 1);
    assert.equal(stored.sizeBytes, bytes.length);
    assert.equal(stored.sha256, sha256(bytes));

    const { data: read } = await apollo.query({ query: READ, variables: { id: stored.id }, fetchPolicy: 'network-only' });
    assert.equal(read.reportFile.id, stored.id);
    assert.equal(read.reportFile.sha256, sha256(bytes));
    assert.equal(read.reportFile.uploadedBy.subject, 'apollo-analyst');
    assert.equal(read.reportFile.downloadUrl, stored.downloadUrl);
    assert.deepEqual(sent, ['POST multipart', useGETForQueries ? 'GET' : 'POST']);

    const res = await fetch(new URL(read.reportFile.downloadUrl, server.base), {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(sha256(body), sha256(bytes));
    assert.match(res.headers.get('content-disposition'), /filename\*=UTF-8''apollo%20upload\.ts01/);
  });
}

test('a refused upload comes back to Apollo as a GraphQL error with its code', async () => {
  const apollo = client();
  const file = new File(['\0binary'], 'image.txt', { type: 'text/plain' });
  const input = { sttId: 1, fiscalYear: 2026, quarter: 'Q1', section: 'AGGREGATE_DATA' };
  await assert.rejects(
    apollo.mutate({ mutation: UPLOAD, variables: { input, file } }),
    (e) => {
      assert.equal(e.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', String(e));
      return true;
    },
  );
});
