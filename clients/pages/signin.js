// Signing in is a link and signing out a form; once back, the page knows
// who is signed in from `me`, with the HttpOnly session cookie that
// `credentials: 'include'` sends.
const api = new URLSearchParams(location.search).get('api');
const here = location.href;
const $ = (id) => document.getElementById(id);

$('signin').href = `${api}/auth/login?returnTo=${encodeURIComponent(here)}`;
$('signout').action = `${api}/auth/logout`;
$('signout').elements.returnTo.value = here;

async function graphql(query) {
  const res = await fetch(`${api}/graphql`, {
    method: 'POST',
    credentials: 'include',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  return res.json();
}

const { data } = await graphql('{ me { subject name status } }');
if (!data?.me) {
  $('who').textContent = 'signed out';
} else {
  $('who').textContent = `${data.me.name} (${data.me.subject}, ${data.me.status})`;
  const files = await graphql('{ reportFiles(first: 50) { edges { node { originalFilename downloadUrl } } } }');
  for (const { node } of files.data.reportFiles.edges) {
    const a = document.createElement('a');
    a.href = new URL(node.downloadUrl, api).href;
    a.textContent = node.originalFilename;
    const li = document.createElement('li');
    li.append(a);
    $('files').append(li);
  }
}
document.body.dataset.ready = 'true';
