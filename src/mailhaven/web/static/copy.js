// Copy buttons: a button[data-copy] copies the text of the element whose id it names.
// Without JavaScript the buttons stay hidden and the values remain selectable text.
"use strict";
(function () {
  const status = document.querySelector(".copy-status");
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) { return; }
    button.hidden = false;
    button.setAttribute("aria-label", "Copy " + source.textContent.slice(0, 40));
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = "Copied";
        if (status) { status.textContent = "Copied to the clipboard."; }
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      }, function () {
        if (status) { status.textContent = "Copying failed: select the text and copy it."; }
      });
    });
  });
})();
