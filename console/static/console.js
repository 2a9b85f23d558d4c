// A little plain JS: confirm before a destructive form is sent, leave empty optional fields
// out of a GET form marked data-drop-empty (Connect: no name asked for), and sortable tables.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
    return;
  }
  if ("dropEmpty" in event.target.dataset) {
    event.target.querySelectorAll("input[name]").forEach((input) => {
      if (input.value.trim() === "") input.disabled = true;
    });
  }
});
document.addEventListener("click", (event) => {
  const th = event.target.closest("table.sortable th");
  if (!th) return;
  const table = th.closest("table");
  const index = Array.from(th.parentNode.children).indexOf(th);
  const ascending = th.dataset.order !== "asc";
  table.querySelectorAll("th").forEach((h) => delete h.dataset.order);
  th.dataset.order = ascending ? "asc" : "desc";
  const key = (row) => {
    const cell = row.children[index];
    const raw = cell ? (cell.dataset.sort ?? cell.textContent.trim()) : "";
    const number = Number(raw);
    return raw !== "" && !Number.isNaN(number) ? number : raw.toLowerCase();
  };
  const body = table.tBodies[0];
  Array.from(body.rows)
    .sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    })
    .forEach((row) => body.appendChild(row));
});
