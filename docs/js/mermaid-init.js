// Draw every <div class="mermaid"> (```mermaid blocks, see mkdocs.yml) once the page is loaded.
window.addEventListener("load", function () {
  if (window.mermaid) {
    window.mermaid.initialize({ startOnLoad: false, theme: "neutral" });
    window.mermaid.run({ querySelector: ".mermaid" });
  }
});
