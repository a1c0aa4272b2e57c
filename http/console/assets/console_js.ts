/**
 * @module console_js
 * The console's only script (plain JavaScript, no framework, about 5 KB), as a string so the bundle
 * carries it. Pages work without it (forms post, links page); with it: relative times, live updates
 * from `/console/events` (Server-Sent Events) patched into the page or a fragment re-fetched,
 * confirmations, and actions sent with fetch so a command's status can be watched in place.
 */
export const CONSOLE_JS = String.raw`
(function () {
  "use strict";
  var body = document.body;
  var zh = document.documentElement.lang === "zh-TW";
  var page = body.getAttribute("data-page");

  function ago(iso) {
    if (!iso) return zh ? "從未" : "never";
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return zh ? s + " 秒前" : s + " s ago";
    var m = Math.round(s / 60);
    if (m < 60) return zh ? m + " 分鐘前" : m + " min ago";
    var h = Math.round(m / 60);
    if (h < 48) return zh ? h + " 小時前" : h + " h ago";
    return zh ? Math.round(h / 24) + " 天前" : Math.round(h / 24) + " d ago";
  }
  function times(root) {
    var els = (root || document).querySelectorAll("[data-at]");
    for (var i = 0; i < els.length; i++) {
      var at = els[i].getAttribute("data-at");
      els[i].textContent = ago(at);
      if (at) els[i].title = new Date(at).toLocaleString();
    }
  }
  times();
  setInterval(times, 5000);

  // Re-fetches a server-rendered fragment of this page and swaps it in (debounced).
  var pending = {};
  function refresh(id, delay) {
    if (pending[id]) return;
    pending[id] = setTimeout(function () {
      var url = new URL(location.href);
      url.searchParams.set("fragment", id);
      fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      }).then(function (html) {
        pending[id] = null;
        var old = document.getElementById(id);
        if (!old) return;
        var tpl = document.createElement("template");
        tpl.innerHTML = html.trim();
        var fresh = tpl.content.firstElementChild;
        if (fresh) { old.replaceWith(fresh); times(fresh); }
      }).catch(function () { pending[id] = null; });
    }, delay || 300);
  }

  function setOnline(root, online) {
    var dot = root.querySelector(".dot");
    if (dot) dot.classList.toggle("on", online);
    var label = root.querySelector("[data-f=status]");
    if (label) label.textContent = online ? (zh ? "上線" : "online") : (zh ? "離線" : "offline");
  }
  function patchHeartbeat(root, e) {
    var f = function (name) { return root.querySelector("[data-f=" + name + "]"); };
    if (f("temp")) f("temp").textContent = e.temperature === null ? "–" : e.temperature.toFixed(1) + " °C";
    if (f("page")) f("page").textContent = e.page === null ? "–" : String(e.page);
    if (f("last")) { f("last").setAttribute("data-at", e.at); f("last").textContent = ago(e.at); }
    setOnline(root, true);
    if (root.tagName === "TR") { root.classList.remove("flash"); void root.offsetWidth; root.classList.add("flash"); }
  }

  var handlers = {
    fleet: function (e) {
      var row = e.serial ? document.querySelector('tr[data-serial="' + CSS.escape(e.serial) + '"]') : null;
      if (e.type === "heartbeat") { if (row) patchHeartbeat(row, e); else refresh("fleet-table", 1500); }
      else if (e.type === "presence") { if (row) setOnline(row, e.online); }
      else if (e.type === "sale" || e.type === "error") refresh("fleet-table", 2000);
    },
    machine: function (e) {
      var serial = body.getAttribute("data-serial");
      if (e.type === "heartbeat" && e.serial === serial) patchHeartbeat(document.getElementById("machine-head"), e);
      else if (e.type === "presence" && e.serial === serial) setOnline(document.getElementById("machine-head"), e.online);
      else if ((e.type === "sale" || e.type === "error") && e.serial === serial) refresh("machine-live");
      else if (e.type === "command") {
        var mine = e.serials.indexOf(serial) >= 0 || e.status === "expired";
        for (var i = 0; !mine && i < e.ids.length; i++) {
          mine = !!document.querySelector('[data-message-id="' + CSS.escape(e.ids[i]) + '"]');
        }
        if (mine) refresh("machine-live", 200);
      }
    },
    alerts: function (e) { if (e.type === "error") refresh("alerts-list", 500); },
  };

  var indicator = document.getElementById("live");
  function live(on) {
    if (!indicator) return;
    indicator.querySelector(".dot").classList.toggle("on", on);
    indicator.querySelector("span:last-child").textContent = on ? (zh ? "即時" : "live") : (zh ? "重新連線中…" : "reconnecting…");
  }
  if (body.hasAttribute("data-live") && window.EventSource) {
    var source = new EventSource("/console/events");
    source.addEventListener("open", function () { live(true); });
    source.addEventListener("error", function () { live(false); });
    source.addEventListener("batch", function (msg) {
      var batch = JSON.parse(msg.data);
      var handle = handlers[page];
      if (!handle) return;
      for (var i = 0; i < batch.events.length; i++) handle(batch.events[i]);
      if (batch.dropped > 0 && page === "fleet") refresh("fleet-table", 2000);
    });
  }
  if (page === "system") setInterval(function () { refresh("system-live", 0); }, 5000);

  // Confirmations; the dispense form names the slot picked.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute("data-confirm");
    if (question) {
      var slot = form.querySelector("[name=slot_no]");
      if (slot) question = question.replace("{slot}", slot.value);
      if (!window.confirm(question)) { ev.preventDefault(); return; }
    }
    if (!form.hasAttribute("data-fetch")) return;
    ev.preventDefault();
    var out = form.querySelector(".result");
    var button = form.querySelector("button[type=submit], button:not([type])");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      if (out) { out.textContent = res.data.message || ""; out.className = "result " + (res.ok ? "ok" : "bad"); }
      if (res.ok) refresh("machine-live", 50);
    }).catch(function (error) {
      if (out) { out.textContent = String(error); out.className = "result bad"; }
    }).then(function () { if (button) button.disabled = false; });
  });
})();
`;
