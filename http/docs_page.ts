/**
 * @module docs_page
 * The `/docs` page: one self-contained HTML file (inline CSS and JS, no CDN, works offline) that
 * reads `/openapi.json` and renders every operation: parameters, request and response schemas
 * with examples, and a "Try it" form that sends the request with your bearer token.
 */

// Plain JS in a string: no backticks and no dollar-brace inside, so it embeds as is.
export const DOCS_PAGE = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Star Cloud gateway API</title>
<style>
  :root { --fg: #1d2330; --muted: #5b6475; --line: #dde2ea; --bg: #f6f8fb; --code: #0f172a; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { background: #16213a; color: #fff; padding: 18px 28px; }
  header h1 { margin: 0; font-size: 22px; }
  header p { margin: 4px 0 0; color: #c7d0e0; }
  main { max-width: 1100px; margin: 0 auto; padding: 20px 28px 60px; }
  .auth { display: flex; gap: 8px; align-items: center; background: #fff; border: 1px solid var(--line);
    border-radius: 8px; padding: 10px 14px; margin-bottom: 18px; }
  .auth input { flex: 1; font: 14px ui-monospace, monospace; padding: 6px 8px; border: 1px solid var(--line); border-radius: 5px; }
  h2 { margin: 28px 0 10px; font-size: 18px; text-transform: capitalize; }
  details.op { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; }
  details.op > summary { cursor: pointer; padding: 10px 14px; display: flex; gap: 12px; align-items: center; list-style: none; }
  details.op > summary::-webkit-details-marker { display: none; }
  .method { font: 700 12px ui-monospace, monospace; color: #fff; border-radius: 4px; padding: 3px 8px; min-width: 64px; text-align: center; text-transform: uppercase; }
  .get { background: #1f7ae0; } .post { background: #1a9c5a; } .delete { background: #d0453a; } .put, .patch { background: #c98a12; }
  .path { font: 600 14px ui-monospace, monospace; }
  .summary { color: var(--muted); }
  .lock { margin-left: auto; color: var(--muted); font-size: 12px; }
  .body { padding: 4px 16px 16px; border-top: 1px solid var(--line); }
  h4 { margin: 14px 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  table { border-collapse: collapse; width: 100%; font-size: 14px; }
  td, th { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
  code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; }
  pre { background: var(--code); color: #e2e8f0; padding: 10px 12px; border-radius: 6px; overflow: auto; margin: 4px 0; }
  .schema { font: 13px/1.6 ui-monospace, monospace; background: #f1f4f9; border-radius: 6px; padding: 8px 12px; overflow: auto; }
  .schema .t { color: #7c3aed; } .schema .req { color: #d0453a; } .schema .d { color: var(--muted); font-family: system-ui, sans-serif; }
  .status { font-weight: 700; }
  .try { margin-top: 12px; padding: 10px 12px; background: #f1f4f9; border-radius: 6px; }
  .try label { display: block; font-size: 13px; margin: 6px 0 2px; }
  .try input, .try textarea { width: 100%; font: 13px ui-monospace, monospace; padding: 5px 7px; border: 1px solid var(--line); border-radius: 4px; }
  .try textarea { min-height: 90px; }
  button { font: 600 13px system-ui, sans-serif; background: #16213a; color: #fff; border: 0; border-radius: 5px; padding: 7px 14px; cursor: pointer; margin-top: 8px; }
  .error { color: #d0453a; }
</style>
</head>
<body>
<header><h1 id="title">API</h1><p id="subtitle">Loading openapi.json…</p></header>
<main>
  <div class="auth"><label for="token"><b>Bearer token</b></label>
    <input id="token" type="password" placeholder="API_TOKEN, used by Try it" autocomplete="off"></div>
  <div id="content"></div>
</main>
<script>
(function () {
  "use strict";
  var spec = null;
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "class") e.className = attrs[k];
      else if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function resolve(s) {
    var seen = 0;
    while (s && s.$ref && seen++ < 20) {
      var parts = s.$ref.replace(/^#\//, "").split("/");
      s = parts.reduce(function (o, p) { return o && o[p]; }, spec);
    }
    return s || {};
  }
  function refName(s) { return s && s.$ref ? s.$ref.split("/").pop() : ""; }
  function typeOf(s) {
    s = resolve(s);
    if (s.enum) return s.enum.map(function (v) { return JSON.stringify(v); }).join(" | ");
    var t = Array.isArray(s.type) ? s.type.join(" | ") : (s.type || (s.properties ? "object" : s.anyOf || s.oneOf ? "one of" : "any"));
    if (t === "array") t = typeOf(s.items || {}) + "[]";
    if (s.nullable) t += " | null";
    return t;
  }
  function example(s, depth) {
    s = resolve(s);
    depth = depth || 0;
    if (s.example !== undefined) return s.example;
    if (s.default !== undefined) return s.default;
    if (s.enum) return s.enum[0];
    if (depth > 6) return null;
    var t = Array.isArray(s.type) ? s.type[0] : s.type;
    if (s.properties || t === "object") {
      var o = {};
      var required = s.required || [];
      for (var k in s.properties || {}) {
        // Optional fields without an example of their own stay out, so "Try it" sends sense.
        var p = resolve(s.properties[k]);
        if (required.indexOf(k) < 0 && p.example === undefined && p.default === undefined && depth === 0) continue;
        o[k] = example(s.properties[k], depth + 1);
      }
      return o;
    }
    if (t === "array") return [example(s.items || {}, depth + 1)];
    if (s.anyOf || s.oneOf) return example((s.anyOf || s.oneOf)[0], depth + 1);
    return { string: "string", integer: 0, number: 0, boolean: true }[t] !== undefined ? { string: "string", integer: 0, number: 0, boolean: true }[t] : null;
  }
  function schemaTree(s, depth) {
    depth = depth || 0;
    var name = refName(s);
    s = resolve(s);
    var box = el("div", depth ? {} : { class: "schema" });
    if (name && depth === 0) box.appendChild(el("div", { class: "d", text: name }));
    var props = s.properties || (s.type === "array" && resolve(s.items).properties) || null;
    if (!props) { box.appendChild(el("span", { class: "t", text: typeOf(s) })); return box; }
    if (s.type === "array") box.appendChild(el("span", { class: "t", text: "array of" }));
    var req = (s.type === "array" ? resolve(s.items).required : s.required) || [];
    var ul = el("div", { style: "padding-left:" + (depth ? 16 : 0) + "px" });
    Object.keys(props).forEach(function (k) {
      var p = resolve(props[k]);
      var line = el("div", {}, [
        el("span", { text: k }),
        req.indexOf(k) >= 0 ? el("span", { class: "req", text: "*" }) : null,
        ": ",
        el("span", { class: "t", text: typeOf(props[k]) }),
        p.description ? el("span", { class: "d", text: "  — " + p.description }) : null,
      ]);
      ul.appendChild(line);
      var inner = p.properties ? p : (p.type === "array" && resolve(p.items).properties ? p : null);
      if (inner && depth < 4) ul.appendChild(schemaTree(props[k], depth + 1));
    });
    box.appendChild(ul);
    return box;
  }
  function jsonSchemaOf(content) {
    return content && content["application/json"] && content["application/json"].schema;
  }
  function tryIt(method, path, op) {
    var box = el("div", { class: "try" });
    var inputs = {};
    (op.parameters || []).forEach(function (p) {
      p = resolve(p);
      var ex = p.example !== undefined ? p.example : (p.schema && resolve(p.schema).example);
      var input = el("input", { placeholder: p.in + (p.required ? ", required" : ""), value: ex === undefined ? "" : String(ex) });
      inputs[p.in + ":" + p.name] = input;
      box.appendChild(el("label", { text: p.name + " (" + p.in + ")" }));
      box.appendChild(input);
    });
    var bodySchema = op.requestBody && jsonSchemaOf(op.requestBody.content);
    var bodyInput = null;
    if (bodySchema) {
      bodyInput = el("textarea");
      bodyInput.value = JSON.stringify(example(bodySchema), null, 2);
      box.appendChild(el("label", { text: "JSON body" }));
      box.appendChild(bodyInput);
    }
    var out = el("div");
    var button = el("button", { type: "button", text: "Send " + method.toUpperCase() });
    button.addEventListener("click", function () {
      var url = path.replace(/\{([^}]+)\}/g, function (_, n) {
        return encodeURIComponent((inputs["path:" + n] || {}).value || "");
      });
      var query = [];
      Object.keys(inputs).forEach(function (k) {
        if (k.indexOf("query:") === 0 && inputs[k].value !== "") {
          query.push(encodeURIComponent(k.slice(6)) + "=" + encodeURIComponent(inputs[k].value));
        }
      });
      if (query.length) url += "?" + query.join("&");
      var headers = {};
      var token = document.getElementById("token").value.trim();
      if (token) headers.Authorization = "Bearer " + token;
      var init = { method: method.toUpperCase(), headers: headers };
      if (bodyInput) { headers["Content-Type"] = "application/json"; init.body = bodyInput.value; }
      out.textContent = "…";
      fetch(url, init).then(function (r) {
        return r.text().then(function (text) {
          var shown = text;
          try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
          out.replaceChildren(el("div", { class: "status", text: r.status + " " + r.statusText + "  " + method.toUpperCase() + " " + url }),
            el("pre", { text: shown || "(empty body)" }));
        });
      }).catch(function (e) { out.replaceChildren(el("div", { class: "error", text: String(e) })); });
    });
    box.appendChild(button);
    box.appendChild(out);
    return box;
  }
  function operation(method, path, op) {
    var body = el("div", { class: "body" });
    if (op.description) body.appendChild(el("p", { text: op.description }));
    var params = (op.parameters || []).map(resolve);
    if (params.length) {
      body.appendChild(el("h4", { text: "Parameters" }));
      var table = el("table", {}, [el("tr", {}, [el("th", { text: "name" }), el("th", { text: "in" }), el("th", { text: "type" }), el("th", { text: "description" })])]);
      params.forEach(function (p) {
        table.appendChild(el("tr", {}, [
          el("td", {}, [el("code", { text: p.name }), p.required ? el("span", { class: "req", text: " *" }) : null]),
          el("td", { text: p.in }), el("td", {}, [el("code", { text: typeOf(p.schema || {}) })]),
          el("td", { text: p.description || (p.schema && resolve(p.schema).description) || "" }),
        ]));
      });
      body.appendChild(table);
    }
    var reqSchema = op.requestBody && jsonSchemaOf(op.requestBody.content);
    if (reqSchema) {
      body.appendChild(el("h4", { text: "Request body (application/json)" }));
      body.appendChild(schemaTree(reqSchema));
      body.appendChild(el("pre", { text: JSON.stringify(example(reqSchema), null, 2) }));
    }
    body.appendChild(el("h4", { text: "Responses" }));
    Object.keys(op.responses || {}).forEach(function (code) {
      var r = resolve(op.responses[code]);
      var s = jsonSchemaOf(r.content);
      var row = el("div", { style: "margin:6px 0" }, [el("span", { class: "status", text: code + " " }), r.description || ""]);
      body.appendChild(row);
      if (s) {
        var d = el("details", {}, [el("summary", { text: "schema and example" }), schemaTree(s), el("pre", { text: JSON.stringify(example(s), null, 2) })]);
        body.appendChild(d);
      }
    });
    body.appendChild(tryIt(method, path, op));
    var secured = (op.security || spec.security || []).length > 0;
    return el("details", { class: "op", id: method + "-" + path }, [
      el("summary", {}, [
        el("span", { class: "method " + method, text: method }),
        el("span", { class: "path", text: path }),
        el("span", { class: "summary", text: op.summary || "" }),
        secured ? el("span", { class: "lock", text: "bearer" }) : null,
      ]),
      body,
    ]);
  }
  function render() {
    document.getElementById("title").textContent = spec.info.title + " · v" + spec.info.version;
    document.getElementById("subtitle").textContent = spec.info.description || "";
    var groups = {};
    Object.keys(spec.paths || {}).sort().forEach(function (path) {
      ["get", "post", "put", "patch", "delete"].forEach(function (m) {
        var op = spec.paths[path][m];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || "other";
        (groups[tag] = groups[tag] || []).push(operation(m, path, op));
      });
    });
    var content = document.getElementById("content");
    Object.keys(groups).forEach(function (tag) {
      content.appendChild(el("h2", { text: tag }));
      groups[tag].forEach(function (node) { content.appendChild(node); });
    });
    // A link like /docs#post-/api/v1/machines/{serial_no}/commands opens that operation.
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) { target.open = true; target.scrollIntoView(); }
  }
  fetch("openapi.json").then(function (r) {
    if (!r.ok) throw new Error("openapi.json: HTTP " + r.status);
    return r.json();
  }).then(function (json) { spec = json; render(); }).catch(function (e) {
    document.getElementById("subtitle").textContent = "Cannot load openapi.json: " + e.message;
  });
})();
</script>
</body>
</html>
`;
