// The browser's copy of the server's input rules, built from listDiagnosticsTypes (the
// server's own declaration): it catches mistakes before a round trip. The server checks
// everything again; its answer is the one that counts.

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const INT = /^[0-9]{1,9}$/;
const FLOAT = /^[0-9]{1,9}(\.[0-9]{1,6})?$/;
const INTERFACE = /^[A-Za-z0-9_.:-]{1,15}$/;
const INET_ATON_PART = /^(0[xX][0-9A-Fa-f]*|[0-9]+)$/;

function looksIpv6(value) {
  if (!/^[0-9A-Fa-f:.]+$/.test(value) || !value.includes(":")) return false;
  const halves = value.split("::");
  if (halves.length > 2) return false;
  const groups = halves.flatMap((half) => (half ? half.split(":") : []));
  const last = groups[groups.length - 1] || "";
  const tail = last.includes(".") ? (IPV4.test(last) ? 2 : -99) : 0;
  const hex = groups.slice(0, tail ? -1 : undefined);
  if (!hex.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  const count = hex.length + tail;
  return halves.length === 2 ? count < 8 : count === 8;
}

function describe(char) {
  if (char === " ") return "a space";
  const code = char.codePointAt(0);
  if (code < 0x20 || code === 0x7f) return `a control character (U+${code.toString(16).padStart(4, "0").toUpperCase()})`;
  return `"${char}"`;
}

/** The problem with a destination, or null. rules: listDiagnosticsTypes' addressrules. */
export function checkAddress(value, rules) {
  if (!value) return "Enter a destination: an IPv4 or IPv6 address or a host name.";
  if (value.startsWith("-")) return "A destination cannot start with \"-\".";
  const allowed = new RegExp(`^${rules.characters}$`);
  for (const char of value) {
    if (!allowed.test(char)) return `The destination cannot contain ${describe(char)}: use an IP address or a host name.`;
  }
  if (value.length > rules.maxlength) return `A host name has at most ${rules.maxlength} characters.`;
  if (value.includes(":")) return looksIpv6(value) ? null : `"${value}" is not a valid IPv6 address.`;
  if (/^[0-9.]+$/.test(value)) return IPV4.test(value) ? null : `"${value}" is not a valid IPv4 address.`;
  const label = new RegExp(rules.label);
  const labels = value.replace(/\.$/, "").split(".");
  if (!labels.every((part) => label.test(part))) {
    return `"${value}" is not a valid host name: letters, digits and "-" in dot-separated labels of 1–63 characters.`;
  }
  // A name the resolver would read as a number ("0x7f.1", "web.123"): refused, as the server does.
  if (/^[0-9]+$/.test(labels[labels.length - 1]) || (labels.length <= 4 && labels.every((part) => INET_ATON_PART.test(part)))) {
    return `"${value}" is not a valid IP address or host name (write IPv4 addresses as four decimal numbers, e.g. 192.0.2.1).`;
  }
  return null;
}

/** The problem with "host:port" ("[IPv6]:port" for an IPv6 host), or null. */
function checkHostPort(value, rules) {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(value);
  if (!match) return `"${value}" is not host:port (a host name or address, [IPv6]:port, and a port from 1 to 65535).`;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return `The port of "${value}" is not 1 to 65535.`;
  return checkAddress(match[1] ?? match[2], rules);
}

/** The problem with a URL: http(s)://, a host that passes as a destination, no user. */
function checkUrl(value, rules, schemes) {
  if (!value) return "Enter a URL, such as http://198.51.100.10/.";
  if (value.length > rules.urlmaxlength) return `A URL has at most ${rules.urlmaxlength} characters.`;
  for (const char of value) {
    if (!/[A-Za-z0-9._~:/?#[\]@!$&()*+,;=%-]/.test(char)) return `The URL cannot contain ${describe(char)}.`;
  }
  const match = /^([A-Za-z]+):\/\/([^/?#]*)(.*)$/.exec(value);
  const wanted = schemes.map((s) => `${s}://`).join(" or ");
  if (!match || !schemes.includes(match[1].toLowerCase())) return `A URL starts with ${wanted}.`;
  const netloc = match[2];
  if (netloc.includes("@")) return "A URL cannot carry a user name or password.";
  const bracketed = /^\[([^\]]*)\](?::([0-9]{1,5}))?$/.exec(netloc);
  const plain = /^([^:[\]]*)(?::([0-9]{1,5}))?$/.exec(netloc);
  const parts = bracketed || plain;
  if (!parts) return `"${netloc}" is not a host with an optional port.`;
  if (parts[2] !== undefined && (Number(parts[2]) < 1 || Number(parts[2]) > 65535)) return `The port of "${value}" is not 1 to 65535.`;
  return checkAddress(parts[1], rules);
}

/** The problem with a type's target (its kind: address, host_port or url), or null. */
export function checkTarget(value, dtype, rules) {
  const kind = dtype?.target?.kind ?? "address";
  if (kind === "url") return checkUrl(value, rules, dtype.target.schemes ?? ["http", "https"]);
  if (kind === "host_port") return value ? checkHostPort(value, rules) : "Enter host:port, such as 198.51.100.10:80.";
  return checkAddress(value, rules);
}

/** What the destination field asks for, by target kind: [label hint, placeholder]. */
export function targetHint(dtype) {
  const kind = dtype?.target?.kind ?? "address";
  if (kind === "url") return ["A URL: http:// or https://, a host, an optional port and path", "https://web.lab.test/"];
  if (kind === "host_port") return ["host:port ([IPv6]:port for an IPv6 address)", "198.51.100.10:80"];
  return ["IPv4/IPv6 address or host name", "198.51.100.10 or web.lab.test"];
}

function inRange(number, option) {
  return (option.minimum === null || number >= option.minimum) && (option.maximum === null || number <= option.maximum);
}

function checkValue(option, value, typeName) {
  const problem = `Option "${option.flag}" of ${typeName} needs ${option.value}, got "${value}".`;
  switch (option.kind) {
    case "int":
      return INT.test(value) && inRange(Number(value), option) ? null : problem;
    case "float":
      return FLOAT.test(value) && inRange(Number(value), option) ? null : problem;
    case "enum":
      return option.choices.includes(value) ? null : problem;
    case "interface":
      return INTERFACE.test(value) && !value.startsWith("-") ? null : problem;
    case "address":
      return IPV4.test(value) || looksIpv6(value) ? null : problem;
    case "interface_or_address":
      return IPV4.test(value) || looksIpv6(value) || (INTERFACE.test(value) && !value.startsWith("-")) ? null : problem;
    default:
      return null;
  }
}

/** The problem with the params of a type, or null. dtype: one listDiagnosticsTypes entry. */
export function checkParams(text, dtype) {
  if (!text.trim()) return null;
  for (const char of text) {
    if (char !== " " && !/[A-Za-z0-9_.:-]/.test(char)) return `Parameters cannot contain ${describe(char)}.`;
  }
  const options = new Map(dtype.options.map((option) => [option.flag, option]));
  const allowed = dtype.options.map((option) => option.flag).join(", ");
  const tokens = text.split(" ").filter(Boolean);
  const seen = new Set();
  for (let i = 0; i < tokens.length; i += 1) {
    const token = tokens[i];
    if (!token.startsWith("-")) return `Unexpected argument "${token}": parameters are options; allowed: ${allowed}.`;
    const option = options.get(token);
    if (!option) return `Option "${token}" is not allowed for ${dtype.name}; allowed: ${allowed}.`;
    if (seen.has(token)) return `Option "${token}" is given more than once.`;
    seen.add(token);
    if (option.takes_value) {
      const value = tokens[i + 1];
      if (value === undefined) return `Option "${token}" needs ${option.value}.`;
      const problem = checkValue(option, value, dtype.name);
      if (problem) return problem;
      i += 1;
    }
  }
  for (const group of dtype.conflicts || []) {
    const given = group.filter((flag) => seen.has(flag));
    if (given.length > 1) return `Options ${given.join(" and ")} cannot be used together for ${dtype.name}.`;
  }
  return null;
}

/** Each option of a type in a few characters ("-c 1–100"), with its description. */
export function optionsHint(dtype) {
  return dtype.options.map((option) => {
    let text = option.flag;
    if (option.kind === "int" || option.kind === "float") text += ` ${option.minimum ?? ""}–${option.maximum ?? ""}`;
    else if (option.kind === "enum") text += ` ${option.choices.join("|")}`;
    else if (option.takes_value) text += ` ${option.kind.replace(/_/g, " ")}`;
    return { text, title: option.value ? `${option.description}: ${option.value}` : option.description };
  });
}

/** An example of params for a type: what it adds by default, else its first option. */
export function paramsExample(dtype) {
  const pairs = dtype.default_options?.length ? dtype.default_options : [];
  if (pairs.length) return `e.g. ${pairs.map((pair) => pair.join(" ")).join(" ")}`;
  const first = dtype.options.find((option) => option.kind === "int");
  return first ? `e.g. ${first.flag} ${first.minimum}` : "";
}
