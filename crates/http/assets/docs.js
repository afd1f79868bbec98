// Renders Kith's own /openapi.json; "try it" calls the server that served this page.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No call to the public validator: the page must work offline.
    validatorUrl: null,
    // Sends the session cookie with "try it" calls, after a login from this page.
    withCredentials: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
