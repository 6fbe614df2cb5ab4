/* The API's OpenAPI description, rendered by Swagger UI from files this service serves
   (nothing from another origin). Requests from "Try it out" use the page's session, with
   the CSRF header a session's writes need. */
"use strict";

(function () {
  TR.nav("docs");
  window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // the public validator is another origin
    requestInterceptor(request) {
      request.credentials = "same-origin";
      const method = (request.method || "GET").toUpperCase();
      if (method !== "GET" && method !== "HEAD") {
        request.headers["X-CSRF-Token"] = TR.cookie("tailrace_csrf");
      }
      return request;
    },
  });
})();
