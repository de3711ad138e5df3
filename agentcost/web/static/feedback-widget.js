/*
 * AgentCost feedback widget: thumbs up/down (and an optional comment) for one trace.
 * No dependencies. The page holds only a feedback token for that trace, never an API key.
 *
 *   <div data-agentcost-feedback data-trace-id="abc-123" data-token="aft_..."
 *        data-endpoint="https://feedback.example.com" data-comment="true"></div>
 *   <script src="https://feedback.example.com/static/feedback-widget.js" defer></script>
 *
 * or from script: AgentCostFeedback.render(element, {traceId, token, endpoint, comment}).
 * Voting again replaces the vote (one vote per trace and end user).
 */
(function (global) {
  "use strict";

  var STYLE =
    ".acf{font:14px system-ui,sans-serif;display:inline-flex;flex-direction:column;gap:6px}" +
    ".acf-row{display:flex;gap:6px;align-items:center}" +
    ".acf button{cursor:pointer;border:1px solid #bbb;border-radius:6px;background:#fff;padding:4px 10px;font-size:16px}" +
    ".acf button[aria-pressed=true]{background:#e6f0ff;border-color:#3b6fd8}" +
    ".acf button:disabled{opacity:.6;cursor:default}" +
    ".acf textarea{font:inherit;min-width:16em;min-height:3em}" +
    ".acf-status{color:#555;font-size:12px;min-height:1em}" +
    ".acf-status.acf-error{color:#b00020}";

  function injectStyle(doc) {
    if (doc.getElementById("acf-style")) return;
    var style = doc.createElement("style");
    style.id = "acf-style";
    style.textContent = STYLE;
    doc.head.appendChild(style);
  }

  function el(doc, tag, attrs, text) {
    var node = doc.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function render(root, options) {
    var doc = root.ownerDocument || document;
    var endpoint = (options.endpoint || "").replace(/\/+$/, "");
    if (!options.traceId || !options.token) {
      root.textContent = "AgentCost feedback: traceId and token are required.";
      return null;
    }
    injectStyle(doc);
    var box = el(doc, "div", { "class": "acf", "role": "group", "aria-label": "Rate this answer" });
    var row = el(doc, "div", { "class": "acf-row" });
    var up = el(doc, "button", { type: "button", "aria-pressed": "false", "aria-label": "Helpful", "data-score": "1" }, "\uD83D\uDC4D");
    var down = el(doc, "button", { type: "button", "aria-pressed": "false", "aria-label": "Not helpful", "data-score": "-1" }, "\uD83D\uDC4E");
    row.appendChild(up);
    row.appendChild(down);
    box.appendChild(row);
    var comment = null;
    var send = null;
    if (options.comment) {
      comment = el(doc, "textarea", { "aria-label": "Comment (optional)", maxlength: "10000", placeholder: "Tell us more (optional)" });
      send = el(doc, "button", { type: "button", "class": "acf-send" }, "Send comment");
      box.appendChild(comment);
      box.appendChild(send);
    }
    var status = el(doc, "div", { "class": "acf-status", "role": "status", "aria-live": "polite" });
    box.appendChild(status);
    root.textContent = "";
    root.appendChild(box);

    var score = null;

    function setBusy(busy) {
      [up, down, send].forEach(function (b) { if (b) b.disabled = busy; });
    }

    function submit() {
      if (score === null) {
        status.textContent = "Choose thumbs up or down first.";
        return Promise.resolve(null);
      }
      var body = { trace_id: options.traceId, score: score };
      if (comment && comment.value.trim()) body.comment = comment.value.trim();
      setBusy(true);
      status.className = "acf-status";
      status.textContent = "Sending\u2026";
      return fetch(endpoint + "/api/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + options.token },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) throw new Error(describe(data, response.status));
          status.textContent = "Thanks for your feedback!";
          if (options.onSubmit) options.onSubmit(data);
          return data;
        });
      }).catch(function (error) {
        status.className = "acf-status acf-error";
        status.textContent = "Could not send feedback: " + error.message;
        return null;
      }).then(function (result) {
        setBusy(false);
        return result;
      });
    }

    function vote(value) {
      score = value;
      up.setAttribute("aria-pressed", String(value === 1));
      down.setAttribute("aria-pressed", String(value === -1));
      return submit();
    }

    up.addEventListener("click", function () { vote(1); });
    down.addEventListener("click", function () { vote(-1); });
    if (send) send.addEventListener("click", submit);
    return { vote: vote, submit: submit, element: box };
  }

  function describe(data, status) {
    var detail = data && data.detail;
    if (Array.isArray(detail)) return detail.map(function (d) { return d.msg || d.reason; }).join("; ");
    return detail || ("HTTP " + status);
  }

  function autoRender(doc) {
    var nodes = doc.querySelectorAll("[data-agentcost-feedback]");
    Array.prototype.forEach.call(nodes, function (node) {
      render(node, {
        traceId: node.getAttribute("data-trace-id"),
        token: node.getAttribute("data-token"),
        endpoint: node.getAttribute("data-endpoint") || "",
        comment: node.getAttribute("data-comment") === "true"
      });
    });
  }

  global.AgentCostFeedback = { render: render, autoRender: autoRender };
  if (global.document) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () { autoRender(document); });
    } else {
      autoRender(document);
    }
  }
})(window);
