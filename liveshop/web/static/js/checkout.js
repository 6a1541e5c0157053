// Checkout: an address the server checks field by field, a quote that follows it, and payment:
// 1-tap with a saved card, or a new card (a guest's way). One idempotency key per attempt,
// kept in sessionStorage until an order comes back, so a retry after a lost answer (or a
// reload) finds that order instead of placing a second one.

import { explain, http, money, newKey } from "./api.js";
import { $, busy, el, toast } from "./ui.js";
import {
  breakable, cardFields, clearErrors, enc, localProblems, markCardError, markErrors, methodName,
  methodSpoken, orderName, paymentFlow, productTitle, rememberAddress, report, savedAddress, savedMethods,
  saveCard, skuInfo, startSession, totalsTable, userPath,
} from "./shop.js";

const ADDRESS = ["name", "line1", "line2", "city", "region", "postcode", "country"];
const REGION_REQUIRED = new Set(["US", "CA", "AU"]);
const form = $("#checkout-form");
const status = $("#checkout-status");
const payButton = $("#pay-button");
const card = cardFields("New card");
const address = Object.fromEntries(ADDRESS.map((name) => [name, $(`#${name}`)]));
const inputs = { ...address, email: $("#email"), ...card.inputs };
let who = null;
let methods = [];
let quoteRun = 0; // answers to older quotes are dropped
let quoteTimer = null;

const keyName = () => `liveshop.checkout-key.${who.user.id}`;

function attemptKey() {
  let key = sessionStorage.getItem(keyName());
  if (!key) sessionStorage.setItem(keyName(), (key = newKey("co")));
  return key;
}

async function start() {
  who = await startSession(status);
  if (!who) return;
  let cart;
  try {
    [cart, methods] = await Promise.all([http("GET", `${userPath(who)}/cart`), savedMethods(who)]);
  } catch (error) {
    report(status, error);
    return;
  }
  status.textContent = "";
  if (!cart.lines.length) {
    if (!(await resume())) $("#checkout-empty").classList.remove("hidden");
    return;
  }
  fill();
  setUpPayment();
  $("#checkout-fields").classList.remove("hidden");
  form.addEventListener("change", (event) => {
    if (event.target === address.country) regionRule();
    if (ADDRESS.includes(event.target.name)) {
      clearTimeout(quoteTimer);
      quoteTimer = setTimeout(refreshQuote, 250);
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(payButton, submit);
  });
  refreshQuote();
}

/** The last address and email used here; a likely country otherwise. */
function fill() {
  const saved = savedAddress(who);
  for (const name of ADDRESS) address[name].value = saved?.address?.[name] ?? address[name].value;
  if (!saved) address.country.value = likelyCountry();
  inputs.email.value = saved?.email || "";
  inputs.email.required = who.guest; // the receipt's only way to a guest
  $('label[for="email"]').textContent = who.guest ? "Email for your receipt"
    : "Email for your receipt (optional)";
  regionRule();
}

function likelyCountry() {
  try {
    const region = new Intl.Locale(navigator.language).maximize().region;
    return [...address.country.options].some((o) => o.value === region) ? region : "US";
  } catch {
    return "US";
  }
}

function regionRule() {
  address.region.required = REGION_REQUIRED.has(address.country.value);
  $("#region-label").textContent = address.region.required ? "State / province"
    : "Region (optional)";
}

function setUpPayment() {
  $("#card-slot").append(card.node);
  const select = $("#method");
  select.replaceChildren(...methods.map((m) => el("option", { value: m.id }, methodName(m))),
    el("option", { value: "" }, "A new card"));
  $("#saved").classList.toggle("hidden", !methods.length);
  select.addEventListener("change", paymentChoice);
  paymentChoice();
}

/** 1-tap with the chosen saved card, or the card fields (and "save" for signed-in users). */
function paymentChoice() {
  const method = methods.find((m) => m.id === $("#method").value);
  card.show(!method);
  $("#save-row").classList.toggle("hidden", who.guest || Boolean(method));
  payButton.textContent = method ? `Pay with ${methodName(method)}` : "Place order and pay";
  if (method) payButton.setAttribute("aria-label", `Pay with ${methodSpoken(method)}`);
  else payButton.removeAttribute("aria-label");
}

const readAddress = () => Object.fromEntries(ADDRESS.map((n) => [n, address[n].value.trim()]));

async function refreshQuote() {
  const where = readAddress();
  const run = ++quoteRun;
  if (ADDRESS.some((n) => address[n].required && !where[n])) {
    showQuote(null, "Enter your address to see shipping, tax and the total.");
    return;
  }
  try {
    const quote = await http("POST", `${userPath(who)}/checkout/quote`, { address: where });
    const names = await Promise.all(quote.lines.map((line) => productTitle(line.product_id)));
    if (run !== quoteRun) return;
    clearErrors(address);
    rememberAddress(who, { address: where, email: inputs.email.value.trim() });
    showQuote(quote, "", names);
  } catch (error) {
    if (run !== quoteRun) return;
    // Field messages appear at once, but focus stays where the buyer is typing.
    const marked = markErrors(address, error.details, { focus: false });
    showQuote(null, marked ? "Check the address above to see the total." : explain(error));
  }
}

function showQuote(quote, message, names = []) {
  if (!quote) {
    $("#quote-body").replaceChildren(el("p", { class: "muted" }, message));
    $("#quote-total").textContent = "";
    return;
  }
  const items = quote.lines.map((line, i) => el("tr", {},
    el("th", { scope: "row" }, `${names[i]} × ${line.quantity}`),
    el("td", { class: "num" }, money(line.price_minor * line.quantity, quote.currency))));
  $("#quote-body").replaceChildren(
    el("table", {}, el("caption", { class: "visually-hidden" }, "Items"), el("tbody", {}, items)),
    totalsTable(quote, "Totals"));
  $("#quote-total").textContent = `Total ${money(quote.total_minor, quote.currency)}`;
}

async function submit() {
  $("#form-error").classList.add("hidden");
  clearErrors(inputs);
  if (markErrors(inputs, localProblems(inputs))) {
    toast("Some fields need your attention.", "error");
    return;
  }
  const where = readAddress();
  const email = inputs.email.value.trim();
  const body = { address: where, key: attemptKey() };
  if (email) body.email = email;
  const method = $("#method").value;
  try {
    if (method) body.method_id = method;
    else if (!who.guest && $("#save-card").checked) body.method_id = (await saveCard(who, card.read())).id;
    else body.card = card.read();
    rememberAddress(who, { address: where, email });
    await placed(await http("POST", `${userPath(who)}/checkout`, body));
  } catch (error) {
    await refused(error, !method);
  }
}

/** An order exists (paid or not): from here on, paying is per order, with its own keys. */
async function placed(answer) {
  sessionStorage.removeItem(keyName());
  const order = typeof answer.order === "string"
    ? await http("GET", `/orders/${enc(answer.order)}`) : answer.order;
  form.classList.add("hidden");
  $("#stock-problem").classList.add("hidden");
  $("#result-title").replaceChildren("Order ", ...breakable(orderName(order)));
  $("#result-link").href = `/app/orders/${enc(order.id)}`;
  $("#payment-result").classList.remove("hidden");
  $("#result-title").focus();
  const flow = paymentFlow({ who, order, box: $("#payment-box"), onPaid: () => confirmation(order) });
  if (answer.payment) flow.show(answer.payment);
  else flow.fromOrder(order);
}

function confirmation(order) {
  $("#payment-result").classList.add("hidden");
  const box = $("#confirmation");
  box.replaceChildren(
    el("h2", { id: "confirmation-title" }, "Thank you: your order is paid"),
    el("p", {}, "Order number ", el("strong", {}, breakable(orderName(order)))),
    el("a", { class: "button primary", href: `/app/orders/${enc(order.id)}` }, "View your order"));
  box.classList.remove("hidden");
  box.focus();
  document.title = "Order placed · liveshop";
  toast("Payment received. Thank you!");
}

async function refused(error, usedCard) {
  if (error.code === "out_of_stock") {
    await shortStock(error.details?.available || {});
    return;
  }
  if (markErrors(inputs, error.details) || (usedCard && markCardError(card, error))) {
    toast("Some fields need your attention.", "error");
    return;
  }
  const message = error.temporary
    ? `${explain(error)} Trying again is safe: you will not be charged twice.` : explain(error);
  const note = $("#form-error");
  note.replaceChildren(message);
  if (error.code === "bad_request") note.append(" ", el("a", { href: "/app/cart" }, "Back to your cart"));
  note.classList.remove("hidden");
  toast(message, "error");
}

/** Nothing was held or charged: say what ran short and send the buyer back to the cart. */
async function shortStock(available) {
  const items = await Promise.all(Object.entries(available).map(async ([sku, left]) => {
    const { title } = await skuInfo(sku);
    return el("li", {}, left > 0 ? `${title}: only ${left} left` : `${title}: sold out`);
  }));
  const box = $("#stock-problem");
  box.replaceChildren(
    el("h2", {}, "Some items are no longer available"),
    el("ul", {}, items),
    el("p", {}, "Nothing was charged. Change the quantities in your cart, then check out again."),
    el("a", { class: "button primary", href: "/app/cart" }, "Back to your cart"));
  box.classList.remove("hidden");
  box.focus();
  toast("Some items are no longer available.", "error");
}

/** The cart is empty but an attempt's key is left: its answer was lost after the order was
 *  placed (the lines left the cart). The same key returns that order; `pay: false` only
 *  fetches it, and the buyer pays from there. */
async function resume() {
  const key = sessionStorage.getItem(keyName());
  const saved = savedAddress(who);
  if (!key || !saved?.address) return false;
  try {
    const body = { address: saved.address, key, pay: false };
    await placed(await http("POST", `${userPath(who)}/checkout`, body));
    return true;
  } catch (error) {
    if (!error.temporary) sessionStorage.removeItem(keyName()); // nothing was placed with it
    return false;
  }
}

start();
