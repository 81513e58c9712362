/* Tailor's personalization snippet: no framework, ~2 KB. Served by `tailor serve` at /tailor.js.
 *
 *   <div data-tailor-slot="hero"><h2>Default content, shown until (and unless) a decision arrives</h2></div>
 *   <script async src="http://SERVE/tailor.js" data-user-id="u1"
 *           data-collector="http://COLLECTOR" data-write-key="KEY"></script>
 *
 * On load it asks POST /v1/decide for every [data-tailor-slot] on the page and puts each decision's HTML
 * in its slot (data-tailor-variation, -rule, -reason say what served it). On a timeout (data-timeout-ms,
 * default 800) or any error the slots keep their default markup and get data-tailor-variation="default".
 * With data-collector and data-write-key it sends Segment-Spec "Content Viewed" (per filled slot) and
 * "Content Clicked" (a click inside a slot) events to the collector (`tailor collect`), by sendBeacon.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var attr = function (name, fallback) { return script.getAttribute("data-" + name) || fallback; };
  var api = attr("api", new URL(script.src).origin);
  var timeoutMs = Number(attr("timeout-ms", "800"));
  var collector = attr("collector", null);
  var writeKey = attr("write-key", null);
  var userId = attr("user-id", null);
  var anonymousId = (function () {
    try {
      var id = localStorage.getItem("tailor.anonymousId");
      if (!id) { id = "anon-" + Math.random().toString(36).slice(2); localStorage.setItem("tailor.anonymousId", id); }
      return id;
    } catch (e) { return null; }
  })();

  function slots() { return Array.prototype.slice.call(document.querySelectorAll("[data-tailor-slot]")); }

  function track(event, properties) {
    if (!collector || !writeKey || !navigator.sendBeacon) { return; }
    var message = { type: "track", event: event, properties: properties, writeKey: writeKey,
                    messageId: "tjs-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2),
                    timestamp: new Date().toISOString(), context: { page: { path: location.pathname } } };
    if (userId) { message.userId = userId; } else { message.anonymousId = anonymousId; }
    // text/plain keeps the beacon a simple request (no CORS preflight); the collector reads JSON anyway.
    navigator.sendBeacon(collector + "/v1/track", new Blob([JSON.stringify(message)], { type: "text/plain" }));
  }

  function useDefaults(why) {
    slots().forEach(function (el) {
      el.setAttribute("data-tailor-variation", "default");
      el.setAttribute("data-tailor-reason", why);
    });
  }

  function fill(response) {
    response.decisions.forEach(function (d) {
      var el = document.querySelector('[data-tailor-slot="' + d.slot + '"]');
      if (!el) { return; }
      el.innerHTML = d.content;  // rendered by the server's sandboxed, autoescaping templates
      el.setAttribute("data-tailor-variation", d.variation);
      el.setAttribute("data-tailor-rule", d.rule);
      el.setAttribute("data-tailor-reason", d.reason);
      if (response.fallback) { el.setAttribute("data-tailor-fallback", "true"); }
      var seen = { slot: d.slot, variation: d.variation, rule: d.rule };
      track("Content Viewed", seen);
      el.addEventListener("click", function () { track("Content Clicked", seen); });
    });
  }

  function decide() {
    var names = slots().map(function (el) { return el.getAttribute("data-tailor-slot"); });
    if (!names.length) { return; }
    var controller = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) { controller.abort(); } }, timeoutMs);
    fetch(api + "/v1/decide", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: userId, page: location.pathname, slots: names }),
      signal: controller ? controller.signal : undefined
    }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(fill).catch(function (e) {
      useDefaults(e && e.name === "AbortError" ? "timeout" : "error");
    }).then(function () { clearTimeout(timer); });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", decide); } else { decide(); }
})();
