// The feedback dashboard: reads the metrics API with the user's key and draws
// everything as plain HTML and inline SVG. No framework, no outside requests.
"use strict";

(() => {
  const KEY_STORE = "leadflow.feedback.key";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const params = new URLSearchParams(location.search);
  const REFRESH_S = Math.max(1, Number(params.get("refresh")) || 5);
  const WINDOW = encodeURIComponent(params.get("window") || "30d");
  const $ = (id) => document.getElementById(id);
  const state = { key: null, timer: null, run: 0, threshold: 0.1 };

  // --- building blocks ---------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) if (value != null) node.setAttribute(name, value);
    node.append(...children.filter((c) => c != null && c !== false));
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text != null) node.textContent = text;
    return node;
  }

  /** An SVG chart with its own accessible name; `stretch` fills its box (for bars). */
  function chartSvg(width, height, label, cls, stretch = false) {
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: cls });
    if (stretch) root.setAttribute("preserveAspectRatio", "none");
    root.append(svg("title", {}, label));
    return root;
  }

  const table = (cls, headings, rows) =>
    el(
      "table",
      { class: cls },
      el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows),
    );

  const empty = (text) => el("p", { class: "empty", "data-testid": "empty" }, text);
  const pct = (x, digits = 1) => (x == null ? "–" : `${(x * 100).toFixed(digits)}%`);
  const pctShort = (x) => (x == null ? "–" : `${+(x * 100).toFixed(1)}%`);
  const range = (f) => (f.ci_low == null ? "–" : `${pct(f.ci_low)} – ${pct(f.ci_high)}`);
  const plural = (n, word, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;
  const clock = (date) => date.toLocaleTimeString("en-GB", { hour12: false });
  const day = (iso) => new Date(iso).toLocaleDateString("en-GB", { day: "numeric", month: "short" });
  const above = (f, threshold) => f.rate != null && f.rate > threshold;
  const figure = (f) => [f.rate == null ? "–" : pct(f.rate), el("small", {}, ` ${f.numerator}/${f.denominator}`)];

  function duration(seconds) {
    if (seconds == null) return "–";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 129600) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  function since(iso) {
    const minutes = Math.max(0, Math.round((Date.now() - new Date(iso)) / 60000));
    if (minutes < 1) return "<1 min";
    if (minutes < 60) return `${minutes} min`;
    return minutes < 2880 ? `${Math.round(minutes / 60)} h` : `${Math.round(minutes / 1440)} d`;
  }

  function windowLabel(window) {
    const match = /^(\d+)([mhdw])$/.exec(window || "");
    if (!match) return window;
    const unit = { m: "minute", h: "hour", d: "day", w: "week" }[match[2]];
    return plural(Number(match[1]), unit);
  }

  /** The top of a rate axis and its tick step: round numbers, never past 100%. */
  function scale(highest) {
    const step = highest <= 0.2 ? 0.05 : highest <= 0.5 ? 0.1 : 0.25;
    const top = Math.min(1, Math.max(step, Math.ceil(highest / step) * step));
    return { top, ticks: Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step) };
  }

  function badge(severity) {
    if (!severity) return null;
    const mark = severity === "confirmed" ? "●" : "◐";
    return el("span", { class: `badge ${severity}`, "data-testid": "severity" }, `${mark} ${severity}`);
  }

  // --- the API ----------------------------------------------------------------

  class AuthError extends Error {}

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${state.key}`, Accept: "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(10000),
    }).catch(() => {
      throw new Error("the service did not answer");
    });
    if (response.status === 401) throw new AuthError("That API key was not accepted. Enter a valid key.");
    if (response.status === 403) throw new AuthError("That API key lacks the metrics:read scope.");
    if (!response.ok) throw new Error(`the API answered ${response.status}`);
    return response.json();
  }

  const SECTIONS = {
    headline: { label: "return rate", path: () => `/v1/metrics/return-rate?window=${WINDOW}`, render: renderHeadline },
    trend: {
      label: "trend",
      path: () => `/v1/metrics/return-rate/series?window=${WINDOW}&step=1d&points=30`,
      render: renderTrend,
    },
    groups: {
      label: "groups",
      path: () => `/v1/metrics/return-rate/groups?by=${$("group-by").value}&window=${WINDOW}`,
      render: renderGroups,
    },
    funnel: {
      label: "funnel",
      path: () => `/v1/metrics/funnel?cohort=${$("cohort").value}&cohorts=8`,
      render: renderFunnel,
    },
    accountFunnel: {
      label: "funnel by account",
      path: () => `/v1/metrics/funnel/groups?by=${$("funnel-by").value}&cohort=${$("cohort").value}&cohorts=8`,
      render: renderAccountFunnel,
    },
    rules: { label: "rules", path: () => "/v1/metrics/rule-attribution?window=90d", render: renderRules },
    alerts: { label: "alerts", path: () => "/v1/alerts?status=open&limit=100", render: renderAlerts },
  };

  /** Fetch and draw some sections; a section that fails keeps what it showed. Returns what failed. */
  async function load(names) {
    const results = await Promise.allSettled(names.map((name) => api(SECTIONS[name].path())));
    const failed = [];
    for (const [i, result] of results.entries()) {
      if (result.status === "rejected") {
        if (result.reason instanceof AuthError) throw result.reason;
        failed.push({ name: SECTIONS[names[i]].label, why: result.reason.message });
        continue;
      }
      try {
        SECTIONS[names[i]].render(result.value);
      } catch (error) {
        console.error(error);
        failed.push({ name: SECTIONS[names[i]].label, why: "unexpected data" });
      }
    }
    return failed;
  }

  async function refresh() {
    clearTimeout(state.timer);
    const run = ++state.run;
    let failed;
    try {
      failed = await load(Object.keys(SECTIONS));
    } catch (error) {
      if (error instanceof AuthError) return askForKey(error.message);
      failed = [{ name: "everything", why: error.message }];
    }
    if (run !== state.run) return;
    const now = clock(new Date());
    const notice = $("notice");
    notice.hidden = failed.length === 0;
    if (failed.length) {
      const what = failed.length === Object.keys(SECTIONS).length ? "" : ` ${failed.map((f) => f.name).join(", ")}`;
      const why = [...new Set(failed.map((f) => f.why))].join("; ");
      notice.textContent = `Couldn't refresh${what} at ${now} (${why}). Showing the last data; retrying in ${REFRESH_S} s.`;
    } else {
      $("updated").textContent = `Updated ${now} · refreshes every ${REFRESH_S} s`;
    }
    state.timer = setTimeout(refresh, REFRESH_S * 1000);
  }

  async function reload(name) {
    try {
      const failed = await load([name]);
      if (failed.length)
        Object.assign($("notice"), {
          hidden: false,
          textContent: `Couldn't load ${failed[0].name} (${failed[0].why}).`,
        });
    } catch (error) {
      askForKey(error.message);
    }
  }

  // --- the key ----------------------------------------------------------------

  function keyFromUrl() {
    const key = new URLSearchParams(location.hash.slice(1)).get("key");
    if (key) {
      sessionStorage.setItem(KEY_STORE, key);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return key || sessionStorage.getItem(KEY_STORE);
  }

  function askForKey(message) {
    clearTimeout(state.timer);
    state.run++;
    state.key = null;
    sessionStorage.removeItem(KEY_STORE);
    $("board").hidden = true;
    $("notice").hidden = true;
    $("key-message").textContent = message || "";
    $("key-form").hidden = false;
    $("updated").textContent = "Not signed in";
    $("key-input").focus();
  }

  function start() {
    state.key = keyFromUrl();
    if (!state.key) return askForKey("");
    $("key-form").hidden = true;
    $("board").hidden = false;
    refresh();
  }

  // --- sections ---------------------------------------------------------------

  function renderHeadline(d) {
    state.threshold = d.threshold;
    const none = !d.denominator;
    const high = above(d, d.threshold);
    $("window-label").textContent = windowLabel(d.window);
    $("rate").textContent = none ? "No decisions yet" : pct(d.rate);
    $("rate").classList.toggle("none", none);
    $("decisions").textContent = plural(d.denominator, "decision");
    $("sent-back").textContent = `${d.numerator}`;
    $("interval").textContent = none ? "–" : range(d);
    $("threshold").textContent = pctShort(d.threshold);
    const status = $("status");
    status.textContent = none ? "No data" : high ? "▲ Above threshold" : "✓ OK";
    status.className = `pill ${none ? "neutral" : high ? "bad" : "good"}`;
    let note = "";
    if (high && d.denominator < d.min_decisions)
      note = `Fewer than ${d.min_decisions} decisions: no alert is raised yet.`;
    else if (high && d.ci_low > d.threshold) note = "Even the interval's lower bound is above the threshold.";
    $("headline-note").textContent = note;
    renderReasons(d);
  }

  function renderTrend(d) {
    const box = $("trend-chart");
    const points = d.items.map((p, i) => ({ ...p, i })).filter((p) => p.rate != null);
    if (!points.length) return box.replaceChildren(empty("No decisions yet"));
    const [W, H, left, right, top, bottom] = [640, 220, 44, 96, 12, 26];
    const { top: max, ticks } = scale(Math.max(d.threshold * 2, ...points.map((p) => p.ci_high ?? p.rate)));
    const x = (i) => left + (d.items.length < 2 ? 0.5 : i / (d.items.length - 1)) * (W - left - right);
    const y = (v) => top + (1 - v / max) * (H - top - bottom);
    const last = points[points.length - 1];
    const label = `Return rate over time, ${day(d.items[0].at)} to ${day(last.at)}: latest ${pct(last.rate)}, threshold ${pctShort(d.threshold)}`;
    const chart = chartSvg(W, H, label, "trend");
    for (const t of ticks) {
      chart.append(svg("line", { x1: left, x2: W - right, y1: y(t), y2: y(t), class: "grid" }));
      chart.append(svg("text", { x: left - 6, y: y(t) + 4, class: "tick", "text-anchor": "end" }, pctShort(t)));
    }
    for (const run of runs(points)) {
      const band = [
        ...run.map((p) => `${x(p.i)},${y(p.ci_high ?? p.rate)}`),
        ...[...run].reverse().map((p) => `${x(p.i)},${y(p.ci_low ?? p.rate)}`),
      ];
      chart.append(svg("polygon", { points: band.join(" "), class: "band" }));
      chart.append(svg("polyline", { points: run.map((p) => `${x(p.i)},${y(p.rate)}`).join(" "), class: "line" }));
    }
    chart.append(svg("line", { x1: left, x2: W - right, y1: y(d.threshold), y2: y(d.threshold), class: "threshold" }));
    const text = (x, y, cls, content, anchor = "start") =>
      chart.append(svg("text", { x, y, class: cls, "text-anchor": anchor }, content));
    text(W - right + 6, y(d.threshold) + 4, "threshold-label", `${pctShort(d.threshold)} threshold`);
    for (const p of points) {
      const cls = above(p, d.threshold) ? "dot above" : "dot";
      chart.append(svg("circle", { cx: x(p.i), cy: y(p.rate), r: 3, class: cls }));
    }
    text(x(last.i), y(last.rate) - 9, "value-label", pct(last.rate), "end");
    const n = d.items.length - 1;
    for (const [i, anchor] of [
      [0, "start"],
      [Math.floor(n / 2), "middle"],
      [n, "end"],
    ]) {
      text(x(i), H - 6, "tick", day(d.items[i].at), anchor);
    }
    box.replaceChildren(chart);
  }

  /** Consecutive points with a rate, so the line breaks where there is no data. */
  function runs(points) {
    const out = [];
    for (const p of points) {
      const current = out[out.length - 1];
      if (current && current[current.length - 1].i === p.i - 1) current.push(p);
      else out.push([p]);
    }
    return out;
  }

  /** A rate as a bar with its interval as a whisker and the threshold as a dashed line. */
  function rateBar(f, max, threshold, label) {
    const x = (v) => (v / max) * 300;
    const text =
      f.rate == null
        ? `${label}: no decisions`
        : `${label}: ${pct(f.rate)} of ${plural(f.denominator, "decision")}, 95% interval ${range(f)}`;
    const chart = chartSvg(300, 20, text, "bar", true);
    if (f.rate != null)
      chart.append(svg("rect", { x: 0, y: 4, width: Math.max(1, x(f.rate)), height: 12, class: "fill" }));
    if (f.ci_low != null) {
      const [lo, hi] = [x(f.ci_low), x(Math.min(f.ci_high, max))];
      chart.append(svg("path", { d: `M${lo},10H${hi}M${lo},6V14M${hi},6V14`, class: "whisker" }));
    }
    chart.append(svg("line", { x1: x(threshold), x2: x(threshold), y1: 0, y2: 20, class: "threshold" }));
    return chart;
  }

  function axis(max, ticks, threshold) {
    const marks = ticks.map((t) => el("span", { class: "mark" }, pctShort(t)));
    marks.push(el("span", { class: "mark threshold-mark" }, `${pctShort(threshold)} threshold`));
    const values = [...ticks, threshold];
    marks.forEach((mark, i) => (mark.style.left = `${(values[i] / max) * 100}%`));
    return el("div", { class: "axis", "aria-hidden": "true" }, el("span"), el("div", { class: "marks" }, ...marks));
  }

  function renderGroups(d) {
    if (d.by !== $("group-by").value) return;
    const box = $("group-chart");
    if (!d.items.length) return box.replaceChildren(empty("No decisions yet"));
    const { top, ticks } = scale(Math.max(d.threshold * 2, ...d.items.map((g) => g.ci_high ?? g.rate ?? 0)));
    const rows = d.items.map((g) => {
      const name = g.group ?? "(none)";
      const high = above(g, d.threshold);
      const few = g.denominator < d.min_decisions;
      return el(
        "li",
        { class: `bar-row${high ? " above" : ""}${few ? " few" : ""}`, "data-testid": "group-row", "data-group": name },
        el("span", { class: "label", title: name }, name),
        rateBar(g, top, d.threshold, name),
        el("span", { class: "value" }, ...figure(g)),
        el("span", { class: "flags" }, high ? el("span", { class: "tag" }, "▲ above") : null, badge(g.alert)),
      );
    });
    box.replaceChildren(el("ul", { class: "bars" }, ...rows), axis(top, ticks, d.threshold));
  }

  function shareRows(items, testid) {
    const max = Math.max(...items.map((r) => r.value), 1e-9);
    return el(
      "ul",
      { class: "bars plain" },
      ...items.map((r) => {
        const chart = chartSvg(300, 20, `${r.label}: ${r.text}`, "bar", true);
        const width = Math.max(1, (r.value / max) * 300);
        chart.append(svg("rect", { x: 0, y: 4, width, height: 12, class: r.cls || "fill" }));
        return el(
          "li",
          { class: "bar-row", "data-testid": testid, "data-name": r.label },
          el("span", { class: "label", title: r.label }, r.label),
          chart,
          el("span", { class: "value" }, r.text),
        );
      }),
    );
  }

  function renderReasons(d) {
    const box = $("reason-chart");
    if (!d.denominator) return box.replaceChildren(empty("No decisions yet"));
    if (!d.reasons.length) return box.replaceChildren(empty("No leads sent back"));
    const items = d.reasons.map((r) => ({
      label: r.reason ?? "(no reason)",
      value: r.share,
      text: `${pct(r.share, 0)} · ${r.count}`,
    }));
    box.replaceChildren(shareRows(items, "reason-row"));
  }

  function renderFunnel(d) {
    if (d.cohort !== $("cohort").value) return;
    const box = $("funnel-chart");
    const cohorts = d.items.filter((c) => c.mql > 0).reverse();
    if (!cohorts.length) box.replaceChildren(empty("No handoffs yet"));
    else box.replaceChildren(funnelTable(cohorts));
    const teams = d.breaches_by_team.filter((t) => t.breaches > 0);
    const items = teams.map((t) => ({
      label: t.team ?? "(no team)",
      value: t.breaches,
      text: `${plural(t.breaches, "breach", "breaches")} · ${t.open} open`,
      cls: "fill bad",
    }));
    $("team-breaches").replaceChildren(items.length ? shareRows(items, "team-row") : empty("No SLA breaches"));
  }

  function renderAccountFunnel(d) {
    if (d.by !== $("funnel-by").value || d.cohort !== $("cohort").value) return;
    // Each group is a row of the funnel table, labelled by its value over the same period.
    const rows = d.items
      .filter((g) => g.mql > 0)
      .map((g) => ({ ...g, cohort: g.group ?? "(none)", start: d.start }));
    $("account-funnel").replaceChildren(rows.length ? funnelTable(rows, "Account", "account-funnel-row") : empty("No handoffs yet"));
  }

  function funnelTable(cohorts, heading = "Cohort", rowTestid = "funnel-row") {
    const max = Math.max(...cohorts.map((c) => c.mql));
    const stages = [
      ["mql", "MQL", null, null],
      ["sal", "SAL", "mql_to_sal", "MQL"],
      ["sql", "SQL", "sal_to_sql", "SAL"],
      ["sqo", "SQO", "sql_to_sqo", "SQL"],
    ];
    const rows = cohorts.map((c) => {
      const cells = stages.map(([key, name, conversion, before]) => {
        const bar = chartSvg(100, 10, `${name}: ${c[key]}`, "mini", true);
        const width = Math.max(c[key] ? 2 : 0, (c[key] / max) * 100);
        bar.append(svg("rect", { x: 0, y: 0, width, height: 10, class: `fill ${key}` }));
        const time = c.stage_seconds[key];
        return el(
          "td",
          { "data-testid": `funnel-${key}` },
          el("div", { class: "stage" }, el("b", {}, `${c[key]}`), bar),
          conversion ? el("small", {}, `${pct(c.conversion[conversion], 0)} of ${before}`) : null,
          time && time.median != null
            ? el("small", {}, `in stage: median ${duration(time.median)}, p90 ${duration(time.p90)}`)
            : null,
        );
      });
      const sla = c.sla;
      return el(
        "tr",
        { "data-testid": rowTestid, "data-cohort": c.cohort },
        el("th", { scope: "row" }, c.cohort, el("small", {}, `from ${day(c.start)}`)),
        ...cells,
        el(
          "td",
          { "data-testid": "funnel-sla" },
          el("b", {}, pct(sla.compliance, 0)),
          el("small", {}, `${sla.in_time} of ${sla.decided} in time`),
          sla.breaches ? el("small", { class: "bad-text" }, `▲ ${plural(sla.breaches, "breach", "breaches")}`) : null,
        ),
        el(
          "td",
          {},
          el("b", {}, `${c.returned}`),
          c.disqualified ? el("small", {}, `${c.disqualified} disqualified`) : null,
        ),
      );
    });
    return table("funnel", [heading, ...stages.map((s) => s[1]), "SLA in time", "Sent back"], rows);
  }

  function renderRules(d) {
    const box = $("rule-table");
    if (!d.items.length) return box.replaceChildren(empty("No decisions yet"));
    const max = scale(
      Math.max(state.threshold * 2, ...d.items.flatMap((r) => [r.with.rate ?? 0, r.without.rate ?? 0])),
    ).top;
    const rows = d.items.map((r) => {
      const worst = [...r.reasons].sort((a, b) => (b.ratio ?? 0) - (a.ratio ?? 0))[0];
      const ratio = r.ratio == null ? "–" : `${r.ratio.toFixed(1)}×`;
      return el(
        "tr",
        { "data-testid": "rule-row", "data-rule": r.rule, class: r.ratio >= 1.5 ? "above" : null },
        el(
          "th",
          { scope: "row" },
          el("code", {}, r.rule),
          worst && worst.ratio > 1 ? el("small", {}, `mostly ${worst.reason}`) : null,
        ),
        el("td", {}, ...figure(r.with)),
        el("td", {}, ...figure(r.without)),
        el("td", { class: "ratio" }, r.ratio >= 1.5 ? `▲ ${ratio}` : ratio),
        el("td", { class: "dumbbell-cell" }, dumbbell(r, max)),
      );
    });
    box.replaceChildren(table("rules", ["Rule", "With", "Without", "Ratio", ""], rows));
  }

  /** With (filled) against without (hollow) on one rate axis, the threshold dashed. */
  function dumbbell(r, max) {
    const x = (v) => 6 + (v / max) * 108;
    const chart = chartSvg(120, 16, `${r.rule}: ${pct(r.with.rate)} with, ${pct(r.without.rate)} without`, "dumbbell");
    chart.append(svg("line", { x1: x(state.threshold), x2: x(state.threshold), y1: 0, y2: 16, class: "threshold" }));
    if (r.with.rate != null && r.without.rate != null) {
      chart.append(svg("line", { x1: x(r.without.rate), x2: x(r.with.rate), y1: 8, y2: 8, class: "link" }));
    }
    if (r.without.rate != null) chart.append(svg("circle", { cx: x(r.without.rate), cy: 8, r: 4, class: "without" }));
    if (r.with.rate != null) chart.append(svg("circle", { cx: x(r.with.rate), cy: 8, r: 4, class: "with" }));
    return chart;
  }

  function renderAlerts(d) {
    const breaches = d.items.filter((a) => a.figures.metric === "sla_breach");
    const alerts = d.items.filter((a) => a.figures.metric !== "sla_breach");
    $("alert-list").replaceChildren(
      alerts.length ? el("ul", { class: "alerts" }, ...alerts.map(alertItem)) : empty("No open alerts"),
    );
    $("breach-list").replaceChildren(breaches.length ? breachTable(breaches) : empty("No open SLA breaches"));
  }

  function alertItem(a) {
    const f = a.figures;
    const group =
      !f.group || f.group === "overall" ? "Overall return rate" : `Return rate of ${f.group.replace(":", " ")}`;
    return el(
      "li",
      { class: `alert ${a.severity || ""}`, "data-testid": "alert", "data-severity": a.severity },
      el(
        "div",
        { class: "alert-head" },
        badge(a.severity),
        el("strong", {}, group),
        el("span", { class: "alert-rate" }, pct(f.rate)),
      ),
      // The figures are those the alert was raised with; the headline has today's.
      el("small", {}, `Raised ${since(a.raised_at)} ago, when ${f.numerator} of ${plural(f.denominator, "decision")}`),
      el("small", {}, `over ${f.window} were sent back (95% interval ${range(f)}; threshold ${pctShort(f.threshold)})`),
    );
  }

  function breachTable(items) {
    const rows = items.map((a) => {
      const f = a.figures;
      return el(
        "tr",
        { "data-testid": "breach-row", "data-handoff": f.handoff_id },
        el("td", {}, f.owner ?? "–"),
        el("td", {}, f.team ?? "–"),
        el("td", {}, f.policy ?? "–"),
        el("td", {}, f.stage ? f.stage.toUpperCase() : "–"),
        el(
          "td",
          {},
          f.due_at ? `${day(f.due_at)} ${clock(new Date(f.due_at)).slice(0, 5)}` : "–",
          el("small", {}, f.due_at ? ` overdue ${since(f.due_at)}` : ""),
        ),
        el("td", {}, badge(a.severity) ?? el("span", { class: "badge breach" }, "▲ breached")),
      );
    });
    return table("breaches", ["Owner", "Team", "Policy", "Stage", "Due", ""], rows);
  }

  // --- wiring -----------------------------------------------------------------

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    start();
  });
  $("group-by").addEventListener("change", () => reload("groups"));
  $("cohort").addEventListener("change", () => {
    reload("funnel");
    reload("accountFunnel");
  });
  $("funnel-by").addEventListener("change", () => reload("accountFunnel"));
  window.addEventListener("hashchange", () => location.hash.includes("key=") && start());
  start();
})();
