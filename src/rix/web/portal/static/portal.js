// rix portal: the little behaviour pages need beyond HTML and htmx. No inline script
// anywhere (the Content-Security-Policy forbids it), so it lives here.
"use strict";
document.addEventListener("htmx:configRequest", (event) => {
  // htmx requests carry the session's CSRF token, as forms carry it in a hidden field
  const token = document.body.dataset.csrf;
  if (token) event.detail.headers["X-CSRF-Token"] = token;
});
