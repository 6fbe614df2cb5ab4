/* The login page: show the error the server redirected with, carry ?next= in the form. */
"use strict";

(function () {
  const query = new URLSearchParams(location.search);
  if (query.get("error")) document.getElementById("login-error").classList.remove("hidden");
  // Only a path on this site: an absolute URL here would make the login page an open
  // redirect (the server should check this too).
  const next = query.get("next") || "/";
  document.getElementById("next").value =
    next.startsWith("/") && !next.startsWith("//") ? next : "/";
})();
