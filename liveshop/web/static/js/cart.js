// The cart: one per user across rooms and shows. Quantities change one request at a time (the
// answers then cannot overtake each other); prices come from the quote when an address is
// known (shipping and tax included), else from each SKU's current price.

import { explain, http, money } from "./api.js";
import { $, busy, el, timeOfDay, toast } from "./ui.js";
import { enc, report, savedAddress, skuInfo, startSession, totalsTable, userPath } from "./shop.js";

const status = $("#cart-status");
let who = null;
let seen = []; // SKUs in the order first shown: a line keeps its place when its quantity changes
let chain = Promise.resolve();

async function start() {
  who = await startSession(status);
  if (!who) return;
  try {
    await show(await http("GET", `${userPath(who)}/cart`));
  } catch (error) {
    report(status, error);
  }
}

/** Run changes one after another, whatever the taps' timing. */
function queued(work) {
  const run = chain.then(work);
  chain = run.catch(() => {});
  return run;
}

async function show(cart, focusKey = null) {
  const skus = cart.lines.map((line) => line.sku);
  seen = [...seen.filter((s) => skus.includes(s)), ...skus.filter((s) => !seen.includes(s))];
  const lines = seen.map((s) => cart.lines.find((line) => line.sku === s));
  const [infos, quote] = await Promise.all([Promise.all(lines.map((l) => skuInfo(l.sku))), priced(lines)]);
  $("#cart-empty").classList.toggle("hidden", lines.length > 0);
  $("#cart-summary").classList.toggle("hidden", !lines.length);
  $("#cart-lines").replaceChildren(...lines.map((line, i) => lineCard(line, infos[i], quote)));
  summary(lines, infos, quote);
  if (!focusKey) return;
  // The pressed button was replaced: give focus to its successor (or the heading if it left).
  ($(`[data-focus="${CSS.escape(focusKey)}"]`) || $("#title")).focus();
}

/** The quote for the remembered address, or null (no address yet, or it no longer prices). */
async function priced(lines) {
  const saved = savedAddress(who);
  if (!lines.length || !saved?.address) return null;
  return http("POST", `${userPath(who)}/checkout/quote`, { address: saved.address }).catch(() => null);
}

/** The unit price now: the quote's if there is one, else the SKU's (a live deal's included). */
function unitPrice(sku, view, quote) {
  const quoted = quote?.lines.find((line) => line.sku === sku);
  if (quoted) return { minor: quoted.price_minor, currency: quote.currency, was: null };
  if (!view) return null;
  const deal = view.deal?.phase === "live" ? view.deal : null;
  return { minor: deal ? deal.price_minor : view.price_minor, currency: view.currency,
    was: deal ? view.price_minor : null };
}

function lineCard(line, info, quote) {
  const { title } = info;
  const unit = unitPrice(line.sku, info.view, quote);
  const held = Boolean(line.hold_expires_at) && line.hold_expires_at * 1000 > Date.now();
  const button = (label, name, focus, onclick, disabled = false) => el("button",
    { type: "button", "aria-label": name, dataset: { focus: `${line.sku}:${focus}` }, onclick, disabled },
    label);
  return el("div", { class: "card row", role: "listitem" },
    el("div", { class: "grow" },
      el("h2", {}, title),
      unit && el("p", {},
        el("span", { class: "price" }, money(unit.minor, unit.currency)),
        unit.was !== null && [" ", el("s", {}, el("span", { class: "visually-hidden" }, "was "),
          money(unit.was, unit.currency))],
        line.quantity > 1 && el("span", { class: "muted" },
          ` each · ${money(unit.minor * line.quantity, unit.currency)} in all`)),
      held && el("p", { class: "ok" }, `Held for you until ${timeOfDay(line.hold_expires_at)}`)),
    el("div", { class: "row", role: "group", "aria-label": `Quantity of ${title}` },
      button("−", `One fewer ${title}`, "less",
        (event) => change(event.currentTarget, line.sku, title, line.quantity - 1)),
      el("span", { class: "num" }, line.quantity),
      button("+", `One more ${title}`, "more",
        (event) => change(event.currentTarget, line.sku, title, line.quantity + 1),
        line.quantity >= 1000)),
    button("Remove", `Remove ${title}`, "remove",
      (event) => change(event.currentTarget, line.sku, title, 0, "DELETE")));
}

/** Set a line's quantity (0 removes it) and show the cart the server answers. */
function change(button, sku, title, quantity, method = "PUT") {
  const focusKey = button.dataset.focus;
  return busy(button, () => queued(async () => {
    const path = `${userPath(who)}/cart/items/${enc(sku)}`;
    try {
      const cart = await http(method, path, method === "PUT" ? { quantity } : undefined);
      await show(cart, quantity > 0 ? focusKey : "title");
      status.textContent = quantity > 0 ? `${title}: ${quantity} in your cart.` : `${title} removed.`;
    } catch (error) {
      const left = error.details?.available;
      toast(typeof left === "number" ? `Only ${left} of ${title} left.` : explain(error), "error");
      // A failed change may still have changed the line (holds are taken anew): show the truth.
      await http("GET", `${userPath(who)}/cart`).then((cart) => show(cart, focusKey), () => {});
    }
  }));
}

function summary(lines, infos, quote) {
  const saved = savedAddress(who);
  const units = lines.reduce((sum, line) => sum + line.quantity, 0);
  status.textContent = lines.length ? `${units} ${units === 1 ? "item" : "items"} in your cart.` : "";
  if (quote) {
    $("#cart-totals").replaceChildren(totalsTable(quote, "Cart totals"));
    $("#cart-note").textContent = `Shipping and tax to ${saved.address.city}, ${saved.address.country}; `
      + "you can change the address at checkout.";
    return;
  }
  const prices = lines.map((line, i) => unitPrice(line.sku, infos[i].view, null));
  const currencies = new Set(prices.map((p) => p?.currency));
  const sum = prices.reduce((total, p, i) => total + (p ? p.minor * lines[i].quantity : 0), 0);
  $("#cart-totals").replaceChildren(currencies.size === 1 && !currencies.has(undefined)
    ? el("p", {}, "Subtotal ", el("span", { class: "price" }, money(sum, [...currencies][0])))
    : "");
  $("#cart-note").textContent = "Shipping and tax are added at checkout.";
}

start();
