// The frontend's upload as the React/Redux app makes it: Apollo Client with
// apollo-upload-client's link, in the browser. Bundled by esbuild
// (scripts/test-clients) into pages/apollo-upload.bundle.js, which
// pages/apollo-upload.html loads. ?api= is the server's origin; the session
// is the cookie that `login` sets.
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';

const api = new URLSearchParams(location.search).get('api');
const $ = (id) => document.getElementById(id);

const apollo = new ApolloClient({
  cache: new InMemoryCache(),
  link: new UploadHttpLink({
    uri: `${api}/graphql`,
    credentials: 'include',
    headers: { 'apollo-require-preflight': 'true' },
  }),
});

const LOGIN = gql`
  mutation Login($token: String!) {
    login(token: $token) { subject }
  }
`;

const UPLOAD = gql`
  mutation Upload($input: UploadReportFileInput!, $file: Upload!) {
    uploadReportFile(input: $input, file: $file) { id version sha256 originalFilename }
  }
`;

$('signin').addEventListener('submit', async (event) => {
  event.preventDefault();
  const { data } = await apollo.mutate({ mutation: LOGIN, variables: { token: $('token').value } });
  $('who').textContent = data.login.subject;
});

$('upload').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('result').textContent = '';
  const file = $('file').files[0];
  const input = { sttId: 1, fiscalYear: 2026, quarter: 'Q1', section: 'ACTIVE_CASE_DATA' };
  try {
    const { data } = await apollo.mutate({ mutation: UPLOAD, variables: { input, file } });
    const f = data.uploadReportFile;
    $('result').textContent = `stored ${f.originalFilename} v${f.version}`;
  } catch (e) {
    // Apollo Client 4: a GraphQL error arrives as CombinedGraphQLErrors.
    const first = e.errors?.[0];
    $('result').textContent = `refused ${first?.extensions?.code ?? 'NO_CODE'}`;
    $('message').textContent = first?.message ?? String(e);
  }
});
