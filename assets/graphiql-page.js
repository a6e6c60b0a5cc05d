// Starts the vendored GraphiQL against this server's /graphql. It lives in a
// file of its own so that the page's Content-Security-Policy can forbid
// inline scripts. Headers typed into the Headers tab (an Authorization:
// Bearer token) are sent with each request and, unless the user opts in,
// never written to localStorage.
(function () {
  var url = new URL('/graphql', window.location.href).href;
  var fetcher = GraphiQL.createFetcher({ url: url });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: true,
      defaultQuery:
        '# Paste {"Authorization": "Bearer <token>"} into Headers below, then run.\n' +
        '{\n  me { subject role status }\n}\n',
    }),
  );
})();
