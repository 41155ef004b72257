// API explorer: Swagger UI (vendored under /static/vendor/swagger-ui, no CDN) on /openapi.json.
// "Authorize" takes an access token from POST /api/v1/auth/login; it is kept in memory only
// (persistAuthorization off), so closing the tab forgets it.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    validatorUrl: null, // never send the document to an online validator
  });
});
