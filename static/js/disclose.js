/* AMS Cluster Wizard: progressive disclosure without inline script.
   A control carrying data-show-when="name=value[,value...]" is shown only while the control
   called `name` holds one of the values; `name` is looked up in the same node row of the
   deployment form (fields named nodes-0-transport) or else in the same form. Hidden fields keep
   their values and are still sent: the server ignores what does not apply to the chosen option.
   Without JavaScript every field stays visible and the form works the same. */
(function () {
  "use strict";

  function scopeOf(el) {
    return el.closest("fieldset.node-row") || el.form || document;
  }

  function matches(control, name) {
    return control.name === name || control.name.slice(-(name.length + 1)) === "-" + name;
  }

  function valueOf(scope, name) {
    var controls = scope.querySelectorAll("input[name], select[name], textarea[name]");
    var found = null;
    for (var i = 0; i < controls.length; i++) {
      var control = controls[i];
      if (!matches(control, name)) {
        continue;
      }
      if (control.type === "radio") {
        if (control.checked) {
          return control.value;
        }
        found = found === null ? "" : found;
      } else if (control.type === "checkbox") {
        return control.checked ? control.value || "y" : "";
      } else {
        return control.value;
      }
    }
    return found;
  }

  function update() {
    var dependants = document.querySelectorAll("[data-show-when]");
    for (var i = 0; i < dependants.length; i++) {
      var el = dependants[i];
      var spec = el.getAttribute("data-show-when");
      var at = spec.indexOf("=");
      if (at < 1) {
        continue;
      }
      var current = valueOf(scopeOf(el), spec.slice(0, at));
      if (current === null) {
        continue; // the controlling field is not on this page: leave the field visible
      }
      var show = spec.slice(at + 1).split(",").indexOf(current) !== -1;
      var wrapper = el.closest(".field") || el;
      wrapper.hidden = !show;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    update();
    document.addEventListener("change", update);
  });
})();
