// conveyor's dashboard: the little it does in the browser. Pages work without it.
"use strict";

// The pipeline page: stage states follow the run in progress (polled once a second).
function followPipeline() {
  const dag = document.getElementById("dag");
  const table = document.getElementById("stages");
  if (!dag && !table) return;
  const legend = document.getElementById("run-state");
  async function poll() {
    try {
      const answer = await fetch("/api/pipeline", { cache: "no-store" });
      if (!answer.ok) return;
      const data = await answer.json();
      for (const [name, state] of Object.entries(data.states)) {
        document.querySelectorAll('[data-stage="' + CSS.escape(name) + '"]').forEach((el) => {
          if (el.matches("g.node")) {
            el.setAttribute("class", "node state-" + state);
            const title = el.querySelector("title");
            if (title) title.textContent = name + ": " + state;
          } else {
            const cell = el.querySelector(".state-cell .status");
            if (cell) { cell.textContent = state; cell.className = "status s-" + state; }
            const why = el.querySelector(".why");
            if (why && data.reasons) why.textContent = data.reasons[name] || "";
          }
        });
      }
      if (legend) {
        legend.dataset.running = data.running_run || "";
        const message = document.getElementById("run-message");
        if (message) message.textContent = data.running_run ? "Run " + data.running_run + " in progress." : "No run in progress.";
      }
    } catch (e) { /* the server went away: try again */ }
  }
  setInterval(poll, 1000);
}

// The runs page: the compare button needs exactly two runs ticked.
function compareButton() {
  const button = document.getElementById("compare");
  if (!button) return;
  const boxes = () => Array.from(document.querySelectorAll('#runs input[name="run"]'));
  const update = () => { button.disabled = boxes().filter((b) => b.checked).length !== 2; };
  boxes().forEach((b) => b.addEventListener("change", update));
  update();
}

// Action forms: the token typed once is remembered for this tab.
function rememberToken() {
  const fields = document.querySelectorAll("input.token");
  const saved = sessionStorage.getItem("conveyor-token") || "";
  fields.forEach((f) => {
    if (!f.value) f.value = saved;
    f.form.addEventListener("submit", () => sessionStorage.setItem("conveyor-token", f.value));
  });
}

document.addEventListener("DOMContentLoaded", () => { followPipeline(); compareButton(); rememberToken(); });
