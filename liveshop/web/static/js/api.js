// The page's identity and the HTTP API: one place for the token, errors and money.

const TOKEN_KEY = "liveshop.token";

export class ApiError extends Error {
  constructor(code, message, { status = 0, temporary = false, details = null } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.temporary = temporary;
    this.details = details;
  }
}

let configPromise = null;

/** What the server says a page needs: the gateway URL, whether guests may join. */
export function config() {
  configPromise ??= fetch("/app/config").then((r) => {
    if (!r.ok) throw new ApiError("unavailable", "liveshop is not reachable", { temporary: true });
    return r.json();
  }).catch((error) => {
    configPromise = null; // try again next time (the API may be restarting)
    throw error instanceof ApiError ? error
      : new ApiError("unavailable", "liveshop is not reachable", { temporary: true });
  });
  return configPromise;
}

function decode(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(decodeURIComponent(escape(atob(part))));
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number") return null;
    return claims;
  } catch {
    return null;
  }
}

/** The signed-in user, or null. A `#token=` in the address signs in (and leaves the address). */
export function session() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has("token")) {
    // A link signs in (staff, demo links), with two guards: a guest token is free to mint,
    // so one from a link could make this browser buy and save cards as someone else; and a
    // link never replaces another account silently.
    const offered = decode(hash.get("token"));
    const held = decode(localStorage.getItem(TOKEN_KEY) || "");
    let replace = Boolean(offered) && !offered.sub.startsWith("guest-");
    if (replace && held && held.sub !== offered.sub) {
      replace = window.confirm(`Sign in as ${offered.name || offered.sub} instead of ${held.name || held.sub}?`);
    }
    if (replace) localStorage.setItem(TOKEN_KEY, hash.get("token"));
    hash.delete("token");
    const rest = hash.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  const token = localStorage.getItem(TOKEN_KEY);
  const claims = token && decode(token);
  if (!claims || claims.exp * 1000 < Date.now() + 5000) return null;
  return {
    token,
    user: { id: claims.sub, name: claims.name || claims.sub },
    rooms: claims.rooms || {},
    expiresAt: claims.exp,
    guest: claims.sub.startsWith("guest-"),
  };
}

/** The roles the session holds in `room` (its own grants and those for every room). */
export function rolesIn(who, room) {
  if (!who) return new Set();
  return new Set([...(who.rooms[room] || []), ...(who.rooms["*"] || [])]);
}

export const STAFF = ["host", "cohost", "moderator", "service"];
export const SELLERS = ["host", "cohost", "service"];

export function hasRole(who, room, roles) {
  const held = rolesIn(who, room);
  return roles.some((r) => held.has(r));
}

export function signIn(token) {
  if (!decode(token)) throw new ApiError("token_invalid", "That is not a liveshop token.");
  localStorage.setItem(TOKEN_KEY, token.trim());
  return session();
}

export function signOut() {
  localStorage.removeItem(TOKEN_KEY);
}

/** The session, or a new guest one when the server allows guests (null otherwise). */
export async function ensureSession({ guest = true } = {}) {
  const current = session();
  if (current || !guest) return current;
  const cfg = await config();
  if (!cfg.guest_tokens) return null;
  const made = await http("POST", "/auth/guest", {}, { auth: false });
  localStorage.setItem(TOKEN_KEY, made.token);
  return session();
}

/** A JSON request to the HTTP API; errors become ApiError with the API's stable code. */
export async function http(method, path, body, { auth = true } = {}) {
  const headers = { Accept: "application/json" };
  const who = auth ? session() : null;
  if (who) headers.Authorization = `Bearer ${who.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("unavailable", "No connection. Check your network and try again.", {
      temporary: true,
    });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    if (error) {
      throw new ApiError(error.code, error.message, {
        status: response.status,
        temporary: error.temporary,
        details: error.details,
      });
    }
    const detail = data && Array.isArray(data.detail) ? data.detail : null;
    throw new ApiError(response.status === 422 ? "invalid_request" : "internal",
      detail ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
        : `The server answered ${response.status}.`,
      { status: response.status, temporary: response.status >= 500 });
  }
  return data;
}

/** ISO 4217 currencies whose minor unit is not the hundredth. Amounts are integers in minor
 *  units as ISO 4217 defines them (what the server stores); browsers' currency data (CLDR)
 *  differs for a few (IQD, ISK, HUF cash...), so the exponent comes from here, not Intl. */
const EXPONENTS = {
  0: ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF"],
  3: ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"],
  4: ["CLF", "UYW"],
};
const digits = new Map(Object.entries(EXPONENTS)
  .flatMap(([places, codes]) => codes.map((code) => [code, Number(places)])));

/** How many decimals a currency's minor unit has (2 for USD, 0 for JPY, 3 for KWD). */
export function minorDigits(currency) {
  const code = String(currency || "").toUpperCase();
  if (digits.has(code)) return digits.get(code);
  // Not in the table: 2, unless the browser knows the code has none (e.g. a new currency).
  let places = 2;
  try {
    const known = new Intl.NumberFormat("en", { style: "currency", currency: code })
      .resolvedOptions().maximumFractionDigits;
    if (known !== 2 && known !== undefined) places = known;
  } catch {
    // not a currency code the browser knows: 2
  }
  digits.set(code, places);
  return places;
}

/** Minor units to a price, in the currency's own number of decimals. */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "";
  const places = minorDigits(currency);
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency", currency, minimumFractionDigits: places, maximumFractionDigits: places,
    }).format(minor / 10 ** places);
  } catch {
    return `${fromMinor(minor, currency)} ${currency}`; // a code the browser cannot format
  }
}

/** Minor units as a plain decimal for an input ("12.50"). */
export function fromMinor(minor, currency) {
  const places = minorDigits(currency);
  const sign = minor < 0 ? "-" : "";
  const text = String(Math.abs(minor)).padStart(places + 1, "0");
  return places ? `${sign}${text.slice(0, -places)}.${text.slice(-places)}` : `${sign}${text}`;
}

/** A typed amount ("12.5", "12,50") to integer minor units without floating point; null if
 *  it is not an amount in that currency. */
export function toMinor(text, currency) {
  const places = minorDigits(currency);
  const match = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(String(text));
  if (!match || (match[2] || "").length > places) return null;
  const minor = Number(match[1] + (match[2] || "").padEnd(places, "0"));
  return Number.isSafeInteger(minor) ? minor : null;
}

/** An idempotency key: the same purchase retried (a lost reply, a reconnect) keeps it. */
export function newKey(prefix = "k") {
  const random = crypto.randomUUID ? crypto.randomUUID().replace(/-/g, "")
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16)).join("");
  return `${prefix}-${random}`.slice(0, 64);
}

/** Human words for an error code (the API's message is used when there is none). */
export function explain(error) {
  const words = {
    out_of_stock: "Sold out.",
    limit_exceeded: "You have reached the limit for this item.",
    payment_declined: "Your card was declined.",
    insufficient_coins: "Not enough coins.",
    rate_limited: "Slow down a little.",
    slow_mode: "Slow mode is on: wait a moment.",
    chat_frozen: "Chat is paused by the channel.",
    muted: "You are muted.",
    banned: "You are banned from this room.",
    unavailable: "Temporarily unavailable, try again.",
    forbidden: "You are not allowed to do that here.",
    bid_too_low: "Someone bid higher: raise your bid.",
    invalid_transition: "That is not possible for this order any more.",
    order_not_found: "No such order.",
    payment_method_not_found: "That card is no longer saved.",
    not_in_cart: "That item is no longer in your cart.",
    sku_not_found: "That item is no longer sold.",
  };
  return words[error.code] || error.message || String(error);
}
