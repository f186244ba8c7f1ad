/* AMS Cluster Wizard: small behaviour shared by every page. Vanilla JS, no build step. */
(function () {
  "use strict";
  // After a rejected form, put the keyboard on the first field that needs attention, unless the
  // user has already moved focus somewhere (e.g. autofocus on the sign-in page without errors).
  document.addEventListener("DOMContentLoaded", function () {
    var invalid = document.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea");
    if (invalid && (document.activeElement === document.body || document.activeElement === null)) {
      invalid.focus();
    }
  });
})();
