// Order history (/app/orders, newest first, paged with `before`) and one order
// (/app/orders/<id>): lines, totals, shipments, payments and history; pay or cancel while it
// is pending, ask for a return once it is delivered.

import { explain, http, money, newKey } from "./api.js";
import { $, busy, dateTime, el, toast } from "./ui.js";
import {
  breakable, enc, orderName, paymentFlow, productTitle, report, setError, startSession, totalsTable,
  userPath,
} from "./shop.js";

const PAGE = 20;
const STATUS = {
  pending: "Awaiting payment", paid: "Paid", fulfilled: "Being prepared", shipped: "Shipped",
  delivered: "Delivered", cancelled: "Cancelled",
};
const TONE = { pending: "warn", paid: "ok", fulfilled: "ok", shipped: "ok", delivered: "ok" };
const PAYMENT = {
  pending: "processing", requires_action: "waiting for verification", succeeded: "paid",
  failed: "failed", refunded: "refunded",
};
const status = $("#page-status");
const statusWord = (s) => STATUS[s] || s;
let who = null;
let before = null; // the last order shown: the next page starts after it

async function start() {
  who = await startSession(status);
  if (!who) return;
  let id = "";
  try {
    id = decodeURIComponent(location.pathname.replace(/^\/app\/orders\/?/, "").replace(/\/$/, ""));
  } catch {
    id = "";
  }
  if (id) await showOrder(id);
  else await showList();
}

// -- the list -----------------------------------------------------------------------------------

async function showList() {
  $("#list-view").classList.remove("hidden");
  $("#guest-note").classList.toggle("hidden", !who.guest);
  $("#more").addEventListener("click", (event) => busy(event.currentTarget, () => more(true)));
  await more(false);
}

async function more(byButton) {
  const query = new URLSearchParams({ limit: PAGE });
  if (before) query.set("before", before);
  try {
    const answer = await http("GET", `${userPath(who)}/orders?${query}`);
    const page = Array.isArray(answer) ? answer : answer?.orders || [];
    const items = page.map(orderItem);
    $("#order-list").append(...items);
    if (page.length) before = page.at(-1).id;
    $("#more").classList.toggle("hidden", page.length < PAGE);
    $("#orders-empty").classList.toggle("hidden", $("#order-list").children.length > 0);
    status.textContent = byButton ? `${page.length} more ${page.length === 1 ? "order" : "orders"}.` : "";
    // The button may have just gone: carry on from the first new order.
    if (byButton && items.length) items[0].querySelector("a").focus();
  } catch (error) {
    report(status, error);
  }
}

function orderItem(order) {
  return el("div", { class: "card stack", role: "listitem" },
    el("div", { class: "row" },
      el("a", { class: "grow", href: `/app/orders/${enc(order.id)}` },
        "Order ", breakable(orderName(order))),
      el("span", { class: `badge ${TONE[order.status] || "muted"}` }, statusWord(order.status))),
    el("div", { class: "row" },
      el("span", { class: "price grow" }, money(order.total_minor, order.currency)),
      el("span", { class: "muted" }, dateTime(order.created_at))));
}

// -- one order ------------------------------------------------------------------------------------

async function showOrder(id, { focus = false } = {}) {
  $("#order-view").classList.remove("hidden");
  let order;
  try {
    order = await http("GET", `/orders/${enc(id)}`);
  } catch (error) {
    $("#order-title").textContent = "Order not found";
    if (error.code === "order_not_found" || error.code === "forbidden") {
      status.textContent = "We could not find this order in your account.";
    } else {
      report(status, error);
    }
    return;
  }
  const titles = await Promise.all(order.lines.map((line) => productTitle(line.product_id)));
  const names = new Map(order.lines.map((line, i) => [line.line, titles[i]]));
  document.title = `Order ${orderName(order)} · liveshop`;
  $("#order-title").replaceChildren("Order ", ...breakable(orderName(order)));
  status.textContent = "";
  const reload = () => showOrder(order.id, { focus: true });
  $("#order-body").replaceChildren(...[
    overview(order),
    itemsCard(order, names),
    order.status === "pending" && payCard(order, reload),
    order.status === "delivered" && returnCard(order, names),
    shipmentsCard(order, names),
    paymentsCard(order),
    historyCard(order),
  ].filter(Boolean));
  if (focus) $("#order-title").focus();
}

const section = (id, title, ...children) => el("section",
  { class: "card stack", "aria-labelledby": id }, el("h2", { id }, title), ...children);

function overview(order) {
  return section("overview-title", "Summary",
    el("p", {}, "Status: ", el("strong", { class: TONE[order.status] || "" }, statusWord(order.status))),
    el("p", { class: "muted" }, `Placed ${dateTime(order.created_at)}`),
    totalsTable(order, "Order totals"));
}

function itemsCard(order, names) {
  const rows = order.lines.map((line) => el("tr", {},
    el("td", {}, names.get(line.line),
      el("div", { class: "muted" }, `${money(line.price_minor, order.currency)} each`,
        line.deal_id ? " · live deal" : "")),
    el("td", { class: "num" }, line.quantity),
    el("td", { class: "num" }, money(line.price_minor * line.quantity, order.currency))));
  return section("items-title", "Items", el("table", {},
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Item"),
      el("th", { scope: "col", class: "num" }, "Qty"),
      el("th", { scope: "col", class: "num" }, "Total"))),
    el("tbody", {}, rows)));
}

function payCard(order, reload) {
  const box = el("div");
  const cancel = el("button", { type: "button", class: "danger" }, "Cancel order");
  cancel.addEventListener("click", () => busy(cancel, () => cancelOrder(order, reload)));
  paymentFlow({ who, order, box, onPaid: () => {
    toast("Payment received. Thank you!");
    reload();
  } }).fromOrder(order);
  return section("pay-title", "Payment",
    el("p", { class: "muted" }, "This order is waiting for payment; unpaid orders are cancelled "
      + "after a short while and their items go back on sale."),
    box, cancel);
}

async function cancelOrder(order, reload) {
  if (!window.confirm("Cancel this order? Its items go back on sale.")) return;
  try {
    await http("POST", `/orders/${enc(order.id)}/cancel`, {});
    toast("Order cancelled.");
  } catch (error) {
    toast(explain(error), "error");
    if (error.code !== "invalid_transition") return; // paid or cancelled meanwhile: show that
  }
  await reload();
}

/** "Request a return" opens a form: how many of each line, and why. */
function returnCard(order, names) {
  const open = el("button", { type: "button", "aria-expanded": "false", "aria-controls": "return-form" },
    "Request a return");
  const form = returnForm(order, names, (answer) => {
    card.replaceChildren(el("h2", { id: "return-title" }, "Returns"),
      el("p", { class: "ok", tabindex: "-1" }, "Return requested. Once it is approved you are refunded ",
        money(answer.refund_minor, order.currency), "."));
    card.querySelector("p").focus();
    toast("Return requested.");
  });
  form.classList.add("hidden");
  open.addEventListener("click", () => {
    const shown = !form.classList.toggle("hidden");
    open.setAttribute("aria-expanded", String(shown));
    if (shown) form.querySelector("input").focus();
  });
  const card = section("return-title", "Returns",
    el("p", { class: "muted" }, "Delivered items can be returned for a while after delivery. "
      + "The refund is their price and tax (not shipping)."),
    open, form);
  return card;
}

function returnForm(order, names, done) {
  let key = newKey("ret"); // one request: a retry after a lost answer is the same request
  const counts = order.lines.map((line) => el("input", { id: `ret-${line.line}`, type: "number",
    name: `line-${line.line}`, min: 0, max: line.quantity, value: 0, inputmode: "numeric" }));
  const reason = el("textarea", { id: "ret-reason", name: "reason", required: true, maxlength: 500,
    rows: 3, "aria-describedby": "ret-reason-error" });
  const button = el("button", { type: "submit", class: "primary" }, "Send the request");
  const form = el("form", { id: "return-form", class: "stack", novalidate: true },
    order.lines.flatMap((line, i) => [
      el("label", { for: counts[i].id }, `${names.get(line.line)}: how many to return (of ${line.quantity})`),
      counts[i]]),
    el("label", { for: reason.id }, "Reason"), reason,
    el("p", { id: "ret-reason-error", class: "warn hidden" }),
    button);
  form.addEventListener("input", () => { key = newKey("ret"); }); // a changed request is a new one
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(button, send);
  });

  async function send() {
    setError(reason, "");
    const lines = order.lines.map((line, i) => ({ line: line.line, quantity: Number(counts[i].value) }))
      .filter((line) => line.quantity > 0);
    if (!lines.length) {
      toast("Choose how many of an item to return.", "error");
      counts[0].focus();
      return;
    }
    if (!reason.value.trim()) {
      setError(reason, "is required");
      reason.focus();
      return;
    }
    try {
      done(await http("POST", `/orders/${enc(order.id)}/returns`,
        { lines, reason: reason.value.trim(), key }));
    } catch (error) {
      if (!error.temporary) key = newKey("ret");
      toast(explain(error), "error");
    }
  }
  return form;
}

function shipmentsCard(order, names) {
  if (!order.shipments?.length) return null;
  return section("ship-title", "Shipments", el("ul", { class: "stack" },
    order.shipments.map((s) => el("li", {},
      el("p", {}, el("strong", {}, s.carrier), " · tracking number ", s.tracking),
      el("p", { class: "muted" }, `Sent ${dateTime(s.created_at)}`),
      el("p", {}, (s.lines || []).map((l) => `${names.get(l.line) ?? `Line ${l.line}`} × ${l.quantity}`)
        .join(", "))))));
}

function paymentsCard(order) {
  if (!order.payments?.length) return null;
  return section("payments-title", "Payments", el("ul", { class: "stack" },
    order.payments.map((p) => el("li", {},
      `${dateTime(p.created_at)} · ${money(p.amount_minor, order.currency)} · `
        + `${PAYMENT[p.status] || p.status}${p.failure ? ` (${p.failure})` : ""}`))));
}

function historyCard(order) {
  if (!order.history?.length) return null;
  return section("history-title", "History", el("ol", { class: "stack" },
    order.history.map((h) => el("li", {},
      el("strong", {}, statusWord(h.status)), ` · ${dateTime(h.at)}`, h.note ? ` · ${h.note}` : ""))));
}

start();
