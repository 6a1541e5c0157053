// Commerce helpers shared by the cart, checkout and order pages: the session, product names,
// totals, form errors next to their fields, and paying an order (a saved card or a new one,
// a verification code, a provider slow to answer). HTTP API only (docs/protocol.md).

import { ensureSession, explain, http, money, newKey } from "./api.js";
import { busy, el, toast } from "./ui.js";

export const enc = encodeURIComponent;
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const userPath = (who) => `/users/${enc(who.user.id)}`;

/** An id with line-break chances after its separators: SKU-based order ids run long on phones. */
export const breakable = (id) => String(id).split(/(?<=[-~:_.])/)
  .flatMap((part, i) => (i ? [el("wbr"), part] : [part]));

/** What a shopper calls an order: its readable number ("LS-10427"), else its id. */
export const orderName = (order) => String((order && (order.number || order.id)) ?? "");

/** Show an error where the page's status goes, and announce it. */
export function report(where, error) {
  where.textContent = explain(error);
  toast(explain(error), "error");
}

/** The session (a guest's when nobody is signed in), or null with the reason in `status`. */
export async function startSession(status) {
  try {
    const who = await ensureSession({ guest: true });
    if (!who) status.textContent = "Sign in to shop: guest shopping is turned off here.";
    return who;
  } catch (error) {
    report(status, error);
    return null;
  }
}

// -- names and prices -------------------------------------------------------------------------

const titles = new Map(); // product id → promise of its title
const skus = new Map(); // sku → promise of {view, title}

/** A product's title; its id if it cannot be read (a name is a nicety, not a blocker). */
export function productTitle(productId) {
  if (!titles.has(productId)) {
    titles.set(productId, http("GET", `/products/${enc(productId)}`)
      .then((product) => product.title || productId, () => productId));
  }
  return titles.get(productId);
}

/** A SKU's committed view (price, deal) and its product's title; view null if unreadable. */
export function skuInfo(sku) {
  if (!skus.has(sku)) {
    skus.set(sku, http("GET", `/skus/${enc(sku)}`).then(
      async (view) => ({ view, title: await productTitle(view.product_id) }),
      () => ({ view: null, title: sku })));
  }
  return skus.get(sku);
}

/** Subtotal, shipping, tax and total of a quote or an order. */
export function totalsTable(totals, caption) {
  const row = (label, minor, strong = false) => el("tr", {},
    el("th", { scope: "row" }, label),
    el("td", { class: strong ? "num price" : "num" }, money(minor, totals.currency)));
  const bp = totals.tax_basis_points;
  const rate = typeof bp === "number" ? ` (${(bp / 100).toLocaleString()}%)` : "";
  return el("table", {},
    el("caption", { class: "visually-hidden" }, caption),
    el("tbody", {},
      row("Subtotal", totals.subtotal_minor),
      row("Shipping", totals.shipping_minor),
      row(`Tax${rate}`, totals.tax_minor),
      row("Total", totals.total_minor, true)));
}

/** The last address that priced a quote, so the cart can show real totals. Per user. */
const addressKey = (who) => `liveshop.address.${who.user.id}`;

export function savedAddress(who) {
  try {
    return JSON.parse(localStorage.getItem(addressKey(who)));
  } catch {
    return null;
  }
}

export function rememberAddress(who, saved) {
  localStorage.setItem(addressKey(who), JSON.stringify(saved));
}

// -- form errors --------------------------------------------------------------------------------
// Every input has an id, a <label for>, and a <p id="ID-error"> named by its aria-describedby.

function labelOf(input) {
  return document.querySelector(`label[for="${CSS.escape(input.id)}"]`)?.textContent || input.name;
}

export function setError(input, message) {
  const note = document.getElementById(`${input.id}-error`);
  if (note) {
    note.textContent = message ? `${labelOf(input)}: ${message}` : "";
    note.classList.toggle("hidden", !message);
  }
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

export function clearErrors(inputs) {
  for (const input of Object.values(inputs)) setError(input, "");
}

/** Each API `{field, message}` next to its input ("body.card.number" is `number`); true if
 *  any landed. `inputs` maps field names to elements. */
export function markErrors(inputs, details, { focus = true } = {}) {
  let first = null;
  for (const { field, message } of Array.isArray(details) ? details : []) {
    const input = inputs[String(field).split(".").pop()];
    if (!input) continue;
    setError(input, message);
    first ??= input;
  }
  if (focus) first?.focus();
  return first !== null;
}

/** What the browser can check before asking the server, in the server's format. */
export function localProblems(inputs) {
  const problems = [];
  for (const [field, input] of Object.entries(inputs)) {
    if (input.matches(":disabled")) continue; // e.g. the card fields while a saved card is chosen
    if (input.required && !input.value.trim()) problems.push({ field, message: "is required" });
    else if (input.validity.typeMismatch) problems.push({ field, message: "is not valid" });
  }
  return problems;
}

// -- cards ----------------------------------------------------------------------------------------

let uid = 0; // element ids stay unique when a page shows several card or code forms

const BRANDS = { visa: "Visa", mastercard: "Mastercard", amex: "American Express" };
const brand = (method) => BRANDS[method.brand] || "Card";
export const methodName = (method) => `${brand(method)} •••• ${method.last4}`;
/** The same for screen readers, which read "••••" as four bullets. */
export const methodSpoken = (method) => `${brand(method)} ending in ${method.last4}`;

export function savedMethods(who) {
  return http("GET", `${userPath(who)}/payment-methods`)
    .then((list) => (Array.isArray(list) ? list : []), () => []);
}

export function saveCard(who, card) {
  return http("POST", `${userPath(who)}/payment-methods`, card);
}

/** Card number and expiry in a fieldset; `show(false)` hides and disables it (a disabled
 *  fieldset's inputs are neither checked nor sent). */
export function cardFields(legend = "Card") {
  const id = `card${++uid}`;
  const year = new Date().getFullYear();
  const option = (value, text) => el("option", { value }, text);
  const field = (control, label) => [el("label", { for: control.id }, label), control,
    el("p", { id: `${control.id}-error`, class: "warn hidden" })];
  const number = el("input", { id: `${id}-number`, name: "number", required: true,
    autocomplete: "cc-number", inputmode: "numeric", maxlength: 23, spellcheck: "false",
    "aria-describedby": `${id}-number-error` });
  const month = el("select", { id: `${id}-month`, name: "exp_month", required: true,
    autocomplete: "cc-exp-month", "aria-describedby": `${id}-month-error` },
  option("", "Month"),
  Array.from({ length: 12 }, (_, i) => option(i + 1, String(i + 1).padStart(2, "0"))));
  const yearPick = el("select", { id: `${id}-year`, name: "exp_year", required: true,
    autocomplete: "cc-exp-year", "aria-describedby": `${id}-year-error` },
  option("", "Year"),
  Array.from({ length: 16 }, (_, i) => option(year + i, year + i)));
  const node = el("fieldset", {},
    el("legend", {}, legend),
    field(number, "Card number"),
    el("div", { class: "row" },
      el("div", { class: "grow" }, field(month, "Expiry month")),
      el("div", { class: "grow" }, field(yearPick, "Expiry year"))));
  return {
    node,
    inputs: { number, exp_month: month, exp_year: yearPick },
    read: () => ({ number: number.value.replace(/[\s-]/g, ""), exp_month: Number(month.value),
      exp_year: Number(yearPick.value) }),
    show(on) {
      node.disabled = !on;
      node.classList.toggle("hidden", !on);
    },
  };
}

/** A card refusal without `details` (the provider: bad number, expired) goes by the number. */
export function markCardError(card, error) {
  if (markErrors(card.inputs, error.details)) return true;
  if (error.code !== "invalid_request") return false;
  setError(card.inputs.number, error.message);
  card.inputs.number.focus();
  return true;
}

// -- paying an order -------------------------------------------------------------------------------

const POLL_MS = 2000;
const POLLS = 20;

/**
 * Paying `order` ({id, total_minor, currency}) inside `box`. `show(answer)` takes what a
 * payment answered (checkout's `payment`, `pay`, `confirm`); `fromOrder(order)` picks up
 * where the order's last payment stands. Ends with onPaid(), or a form to try again.
 */
export function paymentFlow({ who, order, box, onPaid }) {
  let key = null; // this attempt's: kept after a temporary failure, so a retry cannot pay twice
  let moveFocus = false; // only once the buyer acts: a page that just loaded keeps its focus
  const orderPath = `/orders/${enc(order.id)}`;

  function render(...nodes) {
    box.replaceChildren(...nodes);
    if (moveFocus) box.querySelector("input, select, button, a")?.focus();
  }

  function show(answer) {
    if (answer?.status === "succeeded") return onPaid();
    if (answer?.status === "requires_action") return render(codeForm(answer.payment));
    if (answer?.status === "pending") return wait();
    const why = answer?.error ? explain(answer.error) : "The payment did not go through.";
    return payForm(`${why} Your order is saved: pay with another card.`, true);
  }

  function fromOrder(current) {
    if (current.status === "cancelled") {
      return render(el("p", { class: "warn" }, "This order was cancelled: it can no longer be paid."));
    }
    if (current.status !== "pending") return onPaid();
    const last = (current.payments || []).at(-1);
    if (last?.status === "requires_action") return render(codeForm(last.id));
    if (last?.status === "pending") return wait();
    if (last?.status === "failed") {
      return payForm(`The last payment failed${last.failure ? ` (${last.failure})` : ""}.`, true);
    }
    return payForm("", false);
  }

  async function payForm(note, preferNew) {
    const methods = await savedMethods(who);
    const id = `pay${++uid}`;
    const choice = el("select", { id, name: "method_id" },
      methods.map((m) => el("option", { value: m.id }, methodName(m))),
      el("option", { value: "" }, "A new card"));
    if (preferNew || !methods.length) choice.value = "";
    const card = cardFields("New card");
    const pick = () => {
      card.show(choice.value === "");
      key = null; // another method is another attempt
    };
    choice.addEventListener("change", pick);
    pick();
    const button = el("button", { type: "submit", class: "primary" },
      `Pay ${money(order.total_minor, order.currency)}`);
    const form = el("form", { class: "stack", novalidate: true, "aria-label": "Pay for the order" },
      note ? el("p", { class: "warn" }, note) : null,
      el("label", { for: id }, "Pay with"), choice,
      card.node,
      button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      moveFocus = true;
      busy(button, () => pay(choice.value, card));
    });
    render(form);
  }

  async function pay(methodId, card) {
    clearErrors(card.inputs);
    if (!methodId && markErrors(card.inputs, localProblems(card.inputs))) return;
    try {
      const method = methodId || (await saveCard(who, card.read())).id;
      key ??= newKey("pay");
      const answer = await http("POST", `${orderPath}/pay`, { key, method_id: method });
      key = null;
      show(answer);
    } catch (error) {
      await failed(error, card);
    }
  }

  function codeForm(paymentId) {
    const id = `code${++uid}`;
    const input = el("input", { id, name: "code", required: true, autocomplete: "one-time-code",
      inputmode: "numeric", maxlength: 32, "aria-describedby": `${id}-error` });
    const button = el("button", { type: "submit", class: "primary" }, "Confirm payment");
    const form = el("form", { class: "stack", novalidate: true, "aria-label": "Confirm the payment" },
      el("p", {}, "Your bank asks you to confirm this payment with the code it sent you."),
      el("label", { for: id }, "Verification code"), input,
      el("p", { id: `${id}-error`, class: "warn hidden" }),
      button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      moveFocus = true;
      const code = input.value.trim();
      if (!code) {
        setError(input, "is required");
        input.focus();
        return;
      }
      busy(button, async () => {
        try {
          show(await http("POST", `/payments/${enc(paymentId)}/confirm`, { code }));
        } catch (error) {
          await failed(error);
        }
      });
    });
    return form;
  }

  /** The provider has not answered yet: liveshop settles it within seconds, so watch the order. */
  async function wait() {
    render(el("p", {}, "Waiting for the payment to be confirmed…"));
    for (let i = 0; i < POLLS; i++) {
      await sleep(POLL_MS);
      const current = await http("GET", orderPath).catch(() => null);
      if (current && (current.status !== "pending"
          || (current.payments || []).at(-1)?.status !== "pending")) return fromOrder(current);
    }
    return render(el("p", {}, "The payment is taking longer than usual. ",
      el("a", { href: `/app/orders/${enc(order.id)}` }, "Check the order"),
      " again in a minute: you will not be charged twice."));
  }

  async function failed(error, card) {
    if (!error.temporary) key = null;
    toast(explain(error), "error");
    if (error.code === "payment_declined") return payForm(`${explain(error)} Try another card.`, true);
    if (error.code === "conflict") return wait(); // another payment of this order is under way
    if (error.code === "invalid_transition") { // paid or cancelled meanwhile
      const current = await http("GET", orderPath).catch(() => null);
      return current && fromOrder(current);
    }
    return card && markCardError(card, error);
  }

  return { show, fromOrder };
}
