// A share link is /s#<token>: the fragment never reaches a server or its logs. Post it
// once, and take it out of the address bar and the history first.
(function () {
  "use strict";
  var token = window.location.hash.replace(/^#/, "");
  history.replaceState(null, "", window.location.pathname);
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("share-open");
    if (!token) {
      document.getElementById("share-wait").hidden = true;
      document.getElementById("share-missing").hidden = false;
      return;
    }
    document.getElementById("share-token").value = token;
    form.submit();
  });
})();
