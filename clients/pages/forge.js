// text/plain forms send `name=value`: with the name `{"query":"…","x":"` and
// the value `"}` the body is valid JSON, the classic JSON CSRF.
const params = new URLSearchParams(location.search);
const api = params.get('api');
const query = params.get('query');
for (const form of document.forms) form.action = `${api}/graphql`;
const text = document.getElementById('text-field');
text.name = `{"query":${JSON.stringify(query)},"x":"`;
text.value = '"}';
document.getElementById('urlencoded-query').value = query;
document.getElementById('multipart-operations').value = JSON.stringify({ query });
