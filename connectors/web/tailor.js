/* Tailor's personalization snippet: no framework, ~2 KB. Served by `tailor serve` at /tailor.js.
 *
 *   <div data-tailor-slot="hero"><h2>Default content, shown until (and unless) a decision arrives</h2></div>
 *   <script async src="http://SERVE/tailor.js" data-user-id="u1"
 *           data-collector="http://COLLECTOR" data-write-key="KEY"></script>
 *
 * On load it asks POST /v1/decide for every [data-tailor-slot] on the page and puts each decision's HTML
 * in its slot (data-tailor-variation, -rule, -reason say what served it). On a timeout (data-timeout-ms,
 * default 800) or any error the slots keep their default markup and get data-tailor-variation="default".
 * With data-collector and data-write-key it sends Segment-Spec "Content Viewed" (per slot, when its
 * variation is first shown) and "Content Clicked" (a click inside a slot) events to the collector
 * (`tailor collect`), by sendBeacon; the page sends its own events with window.tailor.track(name, props).
 *
 * Every experiment decide assigned the user to (on a slot of this page) is sent once per page as a
 * Segment-Spec "Experiment Viewed" exposure, with the user's segments, for `tailor experiments report`.
 *
 * With a user id it listens to GET /v1/users/{id}/changes (server-sent events) and decides again when
 * the job changes that user's segments or recommendations: a qualifying event shows its variation on the
 * open page, without a reload. data-live="off" turns this off. A failed re-decision keeps what is shown.
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
      if (el.hasAttribute("data-tailor-variation")) { return; }  // keeps a decision already shown
      el.setAttribute("data-tailor-variation", "default");
      el.setAttribute("data-tailor-reason", why);
    });
  }

  var exposed = {};
  function expose(response) {
    (response.experiments || []).forEach(function (e) {
      if (!e.slot || exposed[e.experiment]) { return; }
      exposed[e.experiment] = true;
      track("Experiment Viewed", { experiment_id: e.experiment, experiment_name: e.experiment,
                                   variation_id: e.variant, variation_name: e.variant,
                                   segments: response.segments || [] });
    });
  }

  function fill(response) {
    expose(response);
    response.decisions.forEach(function (d) {
      var el = document.querySelector('[data-tailor-slot="' + d.slot + '"]');
      if (!el) { return; }
      var changed = el.getAttribute("data-tailor-variation") !== d.variation;
      el.innerHTML = d.content;  // rendered by the server's sandboxed, autoescaping templates
      el.setAttribute("data-tailor-variation", d.variation);
      el.setAttribute("data-tailor-rule", d.rule);
      el.setAttribute("data-tailor-reason", d.reason);
      if (response.fallback) { el.setAttribute("data-tailor-fallback", "true"); } else { el.removeAttribute("data-tailor-fallback"); }
      el.tailorShown = { slot: d.slot, variation: d.variation, rule: d.rule };
      if (changed) { track("Content Viewed", el.tailorShown); }
      if (!el.tailorClicks) {
        el.tailorClicks = true;
        el.addEventListener("click", function () { track("Content Clicked", el.tailorShown); });
      }
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

  function follow() {
    if (!userId || !window.EventSource || attr("live", "on") === "off") { return; }
    var pending = null;
    var again = function () {  // a burst of changes (one event can change several segments): one request
      if (pending) { return; }
      pending = setTimeout(function () { pending = null; decide(); }, 20);
    };
    var stream = new EventSource(api + "/v1/users/" + encodeURIComponent(userId) + "/changes");
    stream.addEventListener("segment_change", again);
    stream.addEventListener("recommendation", again);
  }

  window.tailor = { track: track, decide: decide };
  function start() { decide(); follow(); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
