/* Compare copies of a picture: a brief, logged reveal of one copy's clear image, on purpose only.
   Same rules as the main image: the server grants a short window to the lease holder and logs it. */
(function () {
  "use strict";
  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function post(url) {
    return fetch(url, {method: "POST", credentials: "same-origin", headers: {"X-CSRFToken": csrf()}});
  }
  function soften(img, revealId) {
    img.src = img.getAttribute("data-preview-src");
    img.setAttribute("data-state", "blurred");
    img.classList.remove("revealed", "grayscale");
    img.parentNode.classList.remove("is-open");
    if (revealId) { post("/api/v1/reveals/" + revealId + "/end/"); }
  }
  document.querySelectorAll("[data-reveal-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var item = button.closest(".arrivals__item");
      var img = item && item.querySelector("img[data-reveal-api]");
      if (!img || img.getAttribute("data-state") === "revealed") { return; }
      var api = img.getAttribute("data-reveal-api");
      post(api).then(function (r) {
        if (r.ok) { return r.json(); }
        // A category the moderator asked to be warned about: say which, and reveal only if they choose to.
        return r.json().then(function (body) {
          if (body && body.error === "warning_first" && window.confirm(body.detail)) {
            return post(api + "?warned=1").then(function (again) { return again.ok ? again.json() : null; });
          }
          return null;
        }, function () { return null; });
      })
        .then(function (grant) {
          if (!grant) { return; }
          img.classList.add("revealed", "grayscale");
          img.parentNode.classList.add("is-open");
          img.src = grant.url;
          img.setAttribute("data-state", "revealed");
          window.setTimeout(function () { soften(img, grant.reveal); }, grant.seconds * 1000);
        });
    });
  });
})();
