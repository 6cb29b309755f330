// dort5bot dashboard: plain JS, no build step. Talks to /api/v1 (bearer token) and /api/v1/ws.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const LWC = window.LightweightCharts;
  const state = { token: sessionStorage.getItem("dort5bot.token") || "", texts: {},
    lang: localStorage.getItem("dort5bot.lang") || "en", view: "dashboard", ws: null,
    wsRetry: 0, chart: null, candles: null, markers: null, lines: [], equity: null,
    equitySeries: null, lastBar: 0, chartKey: "", tradesOffset: 0, status: null,
    resultChart: null, started: false };
  window.dort5bot = state; // for tests and the curious

  // ------------------------------------------------------------------ texts
  const N_ = (msgid) => msgid; // marks a text for the catalog (web/dashboard.py collects them)
  // The API's action answers, shown translated.
  N_("Engine ARMED: new signals may open positions.");
  N_("Engine DISARMED: no new positions; an open position keeps its stops.");
  N_("Closing the position."); N_("No open position.");
  N_("Engine DISARMED and the position is closing.");
  N_("Engine DISARMED; there was no position to close.");
  N_("Engine HALTED: position closed, nothing trades until it is armed again.");
  N_("backtest"); N_("optimization");
  N_("ARMED"); N_("DISARMED"); N_("HALTED"); // engine modes, as the bot says them
  function t(msgid, values) {
    let s = state.texts[msgid] || msgid;
    if (values) for (const k in values) s = s.split("{" + k + "}").join(String(values[k]));
    return s;
  }
  async function loadTexts(lang) {
    const r = await fetch("/i18n/" + lang + ".json");
    state.texts = r.ok ? await r.json() : {};
    state.lang = lang;
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  }

  // ------------------------------------------------------------------ formatting
  const num = (x) => (x === null || x === undefined || x === "" ? null : Number(x));
  function fmt(x, digits) {
    const v = num(x);
    if (v === null || Number.isNaN(v)) return "-";
    const d = digits === undefined ? (Math.abs(v) >= 1000 ? 2 : Math.abs(v) >= 1 ? 4 : 6) : digits;
    return v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  function signed(el, x, digits) {
    const v = num(x);
    el.textContent = v === null ? "-" : (v > 0 ? "+" : "") + fmt(v, digits);
    el.className = v > 0 ? "pos" : v < 0 ? "neg" : "";
  }
  const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-");
  function duration(s) {
    s = Math.floor(s); const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    return (d ? d + "d " : "") + (h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }
  function toast(text) {
    const el = $("toast"); el.textContent = text; el.classList.add("show");
    clearTimeout(toast.timer); toast.timer = setTimeout(() => el.classList.remove("show"), 4000);
  }
  function table(el, columns, rows, onClick) {
    const head = "<tr>" + columns.map((c) => "<th>" + esc(t(c[0])) + "</th>").join("") + "</tr>";
    el.innerHTML = head;
    rows.forEach((row) => {
      const tr = document.createElement("tr");
      tr.innerHTML = columns.map((c) => "<td>" + esc(c[1](row)) + "</td>").join("");
      if (onClick) { tr.className = "clickable"; tr.onclick = () => onClick(row); }
      el.appendChild(tr);
    });
    if (!rows.length) el.insertAdjacentHTML("beforeend", '<tr><td colspan="' + columns.length +
      '">' + esc(t("Nothing yet.")) + "</td></tr>");
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }

  // ------------------------------------------------------------------ API
  class AuthError extends Error {}
  async function api(path, opts) {
    const r = await fetch("/api/v1" + path, Object.assign({}, opts, {
      headers: { Authorization: "Bearer " + state.token } }));
    if (r.status === 401) { showLogin(t("Wrong token.")); throw new AuthError("401"); }
    const body = await r.json().catch(() => ({}));
    if (r.status === 503 && body.error && body.error.code === "api_off") {
      showLogin(t("The API is off: set API_TOKEN in the bot's settings.")); throw new AuthError("off");
    }
    if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
    return body;
  }
  function quiet(p) { return p.catch((e) => { if (!(e instanceof AuthError)) toast(e.message); }); }

  // ------------------------------------------------------------------ login
  function showLogin(message) {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    state.started = false;
    $("login").hidden = false; $("login-error").textContent = message || ""; $("token").focus();
  }
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("dort5bot.token", state.token);
    try { await api("/status"); } catch (e) { return; }
    $("login").hidden = true; $("token").value = "";
    start();
  });
  $("logout").onclick = () => { sessionStorage.removeItem("dort5bot.token"); state.token = ""; showLogin(""); };

  // ------------------------------------------------------------------ confirmation and actions
  const QUESTIONS = {
    arm: N_("Arm the engine? New signals will open positions."),
    disarm: N_("Disarm the engine? An open position keeps its stops."),
    close: N_("Close the position at market? The engine stays armed."),
    flat: N_("Go flat: disarm, close the position and cancel open orders?"),
    halt: N_("Halt: close the position at market, cancel entries, trade nothing until armed again?"),
  };
  function confirmAction(action) {
    $("confirm-text").textContent = t(QUESTIONS[action]);
    $("confirm").hidden = false;
    $("confirm-yes").onclick = async () => {
      $("confirm").hidden = true;
      try {
        const r = await api("/actions/" + action, { method: "POST" });
        toast(t(r.message)); refreshStatus();
      } catch (e) { if (!(e instanceof AuthError)) toast(e.message); }
    };
  }
  $("confirm-no").onclick = () => { $("confirm").hidden = true; };
  document.querySelectorAll("[data-act]").forEach((b) => { b.onclick = () => confirmAction(b.dataset.act); });

  // ------------------------------------------------------------------ dashboard
  function showStatus(s) {
    state.status = s;
    const mode = $("s-mode"); mode.textContent = t(s.mode); mode.className = "badge " + s.mode;
    $("s-trading").textContent = s.trading_mode || $("s-trading").textContent;
    $("s-phase").textContent = s.phase;
    const h = s.health;
    $("s-feed").textContent = h.feed + (h.streams.some((x) => !x.up) ? " · " + t("stream down") : "");
    $("s-uptime").textContent = duration(s.uptime_s);
    $("s-reason").textContent = s.mode_reason || "-";
  }
  function showPosition(p) {
    $("p-none").hidden = !!p; $("p-open").hidden = !p;
    if (!p) return;
    const side = $("p-side"); side.textContent = p.side; side.className = p.side === "LONG" ? "pos" : "neg";
    $("p-size").textContent = fmt(p.quantity) + " " + p.symbol;
    $("p-entry").textContent = fmt(p.entry_price); $("p-mark").textContent = fmt(p.mark_price);
    signed($("p-pnl"), p.unrealized_pnl, 4);
    $("p-liq").textContent = fmt(p.liquidation_price);
    $("p-sl").textContent = fmt(p.stop_loss); $("p-tp").textContent = fmt(p.take_profit);
  }
  function showBalance(b) {
    $("b-equity").textContent = fmt(b.equity, 2);
    const bal = (b.balances || [])[0];
    $("b-wallet").textContent = bal ? fmt(bal.wallet, 2) : "-";
    $("b-available").textContent = bal ? fmt(bal.available, 2) : "-";
  }
  async function refreshStatus() {
    const [s, p, b] = await Promise.all([api("/status"), api("/position"), api("/balance")]);
    showStatus(s); showPosition(p.position); showBalance(b);
  }
  function chartOptions(height) {
    return { autoSize: true, height: height, layout: { background: { color: "#171c22" }, textColor: "#d8dee6" },
      grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
      timeScale: { timeVisible: true, secondsVisible: true }, rightPriceScale: { borderColor: "#2a313a" } };
  }
  function ensureCharts() {
    if (state.chart || !LWC) return;
    state.chart = LWC.createChart($("chart"), chartOptions(380));
    state.candles = state.chart.addSeries(LWC.CandlestickSeries, { upColor: "#26a69a", downColor: "#ef5350",
      borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350" });
    state.markers = LWC.createSeriesMarkers(state.candles, []);
    state.equity = LWC.createChart($("equity-chart"), chartOptions(200));
    state.equitySeries = state.equity.addSeries(LWC.LineSeries, { color: "#4c8dff", lineWidth: 2 });
  }
  async function loadChart() {
    ensureCharts();
    const symbol = (state.status && state.status.symbols[0]) || "";
    let c;
    try { c = await api("/candles?symbol=" + encodeURIComponent(symbol)); }
    catch (e) { if (e instanceof AuthError) throw e; $("c-title").textContent = e.message; return; }
    state.chartKey = c.symbol + "/" + c.interval_ms; state.interval = c.interval_ms;
    $("c-title").textContent = c.symbol + " · " + c.timeframe;
    const bars = c.candles.map((k) => ({ time: k[0] / 1000, open: k[1], high: k[2], low: k[3], close: k[4] }));
    state.candles.setData(bars);
    if (!state.chartFitted && bars.length) { state.chart.timeScale().fitContent(); state.chartFitted = true; }
    state.lastBar = bars.length ? bars[bars.length - 1].time : 0;
    const snap = (ms) => Math.floor(ms / c.interval_ms) * c.interval_ms / 1000;
    const marks = c.markers.map((m) => ({ time: snap(m.ts_ms), position: m.kind === "entry"
      ? (m.side === "LONG" ? "belowBar" : "aboveBar") : (m.side === "LONG" ? "aboveBar" : "belowBar"),
      color: m.kind === "entry" ? "#4c8dff" : "#f0b429",
      shape: m.kind === "entry" ? (m.side === "LONG" ? "arrowUp" : "arrowDown") : "circle",
      text: m.kind === "entry" ? m.side : m.text }));
    marks.sort((a, b) => a.time - b.time);
    state.markers.setMarkers(marks);
    $("markers").innerHTML = c.markers.map((m) => '<li class="marker-' + m.kind + '">' +
      esc((m.kind === "entry" ? "▲ " + t("Entry") : "● " + t("Exit")) + " " + m.side + " " +
      time(m.ts_ms) + " @ " + fmt(m.price) + (m.kind === "exit" ? " " + m.text : "")) + "</li>").join("");
    state.lines.forEach((l) => state.candles.removePriceLine(l)); state.lines = [];
    const lv = c.levels;
    if (lv) {
      const line = (price, color, title) => { if (price !== null && price !== undefined) state.lines.push(
        state.candles.createPriceLine({ price: Number(price), color: color, lineWidth: 1,
          lineStyle: LWC.LineStyle.Dashed, axisLabelVisible: true, title: title })); };
      line(lv.entry_price, "#4c8dff", t("Entry")); line(lv.stop_loss, "#ef5350", "SL");
      line(lv.take_profit, "#26a69a", "TP");
    }
  }
  function onCandle(k) {
    if (!state.candles || state.chartKey !== k.symbol + "/" + k.interval_ms) return;
    const bar = { time: k.open_ms / 1000, open: k.open, high: k.high, low: k.low, close: k.close };
    if (bar.time < state.lastBar) return;
    state.candles.update(bar); state.lastBar = bar.time;
  }
  async function loadEquity() {
    ensureCharts();
    const e = await api("/equity?max_points=1000");
    const pts = []; let last = -1;
    e.points.forEach((p) => { const ts = Math.floor(p[0] / 1000); if (ts > last) { pts.push({ time: ts, value: Number(p[1]) }); last = ts; } });
    state.equitySeries.setData(pts); state.equityLast = last;
    state.equity.timeScale().fitContent();
  }
  function addAlert(msg) {
    const li = document.createElement("li");
    li.textContent = time(msg.ts_ms) + "  " + msg.data.text;
    $("alerts").prepend(li);
    while ($("alerts").children.length > 50) $("alerts").lastChild.remove();
  }
  async function showDashboard() {
    await refreshStatus(); await loadChart(); await loadEquity();
  }

  // ------------------------------------------------------------------ other views
  const TRADE_COLUMNS = [
    [N_("Symbol"), (r) => r.symbol], [N_("Side"), (r) => r.side], [N_("Entry time"), (r) => time(r.entry_ts_ms)],
    [N_("Exit time"), (r) => time(r.exit_ts_ms)], [N_("Entry"), (r) => fmt(r.entry_price)],
    [N_("Exit"), (r) => fmt(r.exit_price)], [N_("Quantity"), (r) => fmt(r.quantity)],
    [N_("Gross PnL"), (r) => fmt(r.gross_pnl, 4)], [N_("Fees"), (r) => fmt(r.fees, 4)],
    [N_("Funding"), (r) => fmt(r.funding, 4)], [N_("Net PnL"), (r) => fmt(r.net_pnl, 4)],
    [N_("Exit reason"), (r) => r.exit_reason]];
  async function showTrades() {
    const f = new FormData($("trade-filter")); const q = new URLSearchParams({ limit: "50", offset: String(state.tradesOffset) });
    if (f.get("symbol")) q.set("symbol", String(f.get("symbol")).toUpperCase());
    if (f.get("since")) q.set("since_ms", String(Date.parse(f.get("since"))));
    if (f.get("until")) q.set("until_ms", String(Date.parse(f.get("until")) + 86399999));
    const r = await api("/trades?" + q);
    $("t-summary").textContent = t("{total} trades, net {net} USDT", { total: r.total, net: fmt(r.net_pnl, 4) });
    table($("trades-table"), TRADE_COLUMNS, r.trades);
    $("t-prev").disabled = state.tradesOffset === 0; $("t-next").disabled = r.offset + r.trades.length >= r.total;
  }
  $("trade-filter").addEventListener("submit", (ev) => { ev.preventDefault(); state.tradesOffset = 0; quiet(showTrades()); });
  $("t-prev").onclick = () => { state.tradesOffset = Math.max(0, state.tradesOffset - 50); quiet(showTrades()); };
  $("t-next").onclick = () => { state.tradesOffset += 50; quiet(showTrades()); };

  async function showStrategy() {
    const [s, sig] = await Promise.all([api("/strategy"), api("/signals?limit=50")]);
    const a = s.active;
    $("st-active").innerHTML = '<div class="kv"><span>' + esc(t("Rule")) + "</span><b>" + esc(a.id) +
      "</b><span>" + esc(t("Timeframe")) + "</span><b>" + esc(a.timeframe) + "</b><span>" + esc(t("Parameters")) +
      "</span><b>" + esc(Object.entries(a.params).map((e) => e[0] + "=" + e[1]).join(", ")) + "</b>" +
      a.verdicts.map((v) => "<span>" + esc(v.symbol) + "</span><b>" + esc(v.bias + " · " + v.detail + " · " +
        t("confidence") + " " + Math.round(v.strength * 100) + "%") + "</b>").join("") +
      (a.last_signal ? "<span>" + esc(t("Last signal")) + "</span><b>" + esc(a.last_signal.side + " " +
        a.last_signal.symbol + " · " + a.last_signal.reason + (a.last_signal.confidence === null ? "" : " · " +
        t("confidence") + " " + Math.round(a.last_signal.confidence * 100) + "%")) + "</b>" : "") + "</div>";
    table($("signals-table"), [[N_("Time"), (r) => time(r.ts_ms)], [N_("Symbol"), (r) => r.symbol], [N_("Side"), (r) => r.side],
      [N_("Entry"), (r) => fmt(r.entry_price)], [N_("Reason"), (r) => r.reason],
      [N_("Confidence"), (r) => (r.confidence === null ? "-" : Math.round(r.confidence * 100) + "%")], [N_("Verdict"), (r) => r.verdict],
      [N_("Why"), (r) => r.verdict_reason]], sig.signals);
    $("st-catalog").innerHTML = s.catalog.map((c) => "<p><b>" + esc(c.id) + (c.id === a.id ? " ✓" : "") + "</b> — " +
      esc(c.description) + (c.source ? " <small>(" + esc(c.source) + ")</small>" : "") + "<br><small>" +
      esc(c.params.map((p) => p.name + "=" + p.default).join(", ")) + "</small></p>").join("");
  }
  async function showRisk() {
    const r = await api("/risk");
    const rows = r.limits.map((l) => {
      const used = num(l.used), lim = Number(l.limit);
      const pct = used !== null && lim > 0 ? Math.min(100, (100 * used) / lim) : 0;
      return '<tr class="' + (l.breached ? "neg" : "") + '"><td>' + esc(l.name) + "</td><td>" +
        esc(used === null ? "-" : fmt(used, 2)) + "</td><td>" + esc(l.limit === "off" ? t("off") : l.limit + " " + l.unit) +
        '</td><td><div class="bar"><i style="width:' + pct.toFixed(0) + '%"></i></div></td></tr>';
    }).join("") + (r.cooldowns || []).map((c) => "<tr><td>" + esc(c.name) + "</td><td>" + esc(t("until") + " " +
      time(c.until_ms)) + "</td><td></td><td></td></tr>").join("");
    $("risk").innerHTML = '<p><span class="badge ' + esc(r.mode) + '">' + esc(t(r.mode)) + "</span> " + esc(r.halt_reason || "") +
      "</p><table><tr><th>" + esc(t("Limit")) + "</th><th>" + esc(t("Used")) + "</th><th>" + esc(t("Maximum")) +
      "</th><th></th></tr>" + rows + "</table><p><small>" + esc(t("Refused today") + ": " +
      (Object.entries(r.refusals || {}).map((e) => e[0] + " " + e[1]).join(", ") || "0") + " · " +
      t("Losses in a row") + ": " + r.loss_streak + " · " + t("Realized today") + ": " + fmt(r.day_realized_pnl, 2) +
      " USDT") + "</small></p>";
  }
  async function showBacktests() {
    const r = await api("/results");
    table($("results-table"), [[N_("Name"), (x) => x.name], [N_("Kind"), (x) => t(x.kind)], [N_("Modified"), (x) => time(x.modified_ms)],
      [N_("Trades"), (x) => x.summary.trades === undefined ? x.summary.trials : x.summary.trades],
      [N_("Net PnL"), (x) => x.summary.net_pnl === undefined ? fmt(x.summary.best_value) : fmt(x.summary.net_pnl, 4)]],
      r.results, (x) => quiet(openResult(x.id)));
  }
  async function openResult(id) {
    const r = await api("/results/" + id.split("/").map(encodeURIComponent).join("/"));
    const doc = r.result; $("result").hidden = false; $("r-title").textContent = id;
    const best = doc.best || {};
    const stats = doc.stats || { study: doc.study, strategy: doc.strategy, objective: doc.objective,
      best_value: best.value, best_params: best.params || doc.best_params, best_trades: best.trades,
      best_net_pnl: best.net_pnl, trials: doc.trials };
    $("r-stats").innerHTML = '<div class="kv">' + Object.entries(stats).map((e) => "<span>" + esc(e[0]) + "</span><b>" +
      esc(typeof e[1] === "object" ? JSON.stringify(e[1]) : e[1]) + "</b>").join("") + "</div>";
    const trades = doc.trades || [];
    if (doc.trades || !doc.top) table($("r-trades"), TRADE_COLUMNS, trades.slice(0, 500));
    else table($("r-trades"), [[N_("Trial"), (x) => x.number], [N_("Objective"), (x) => fmt(x.value, 4)],
      [N_("Trades"), (x) => x.trades], [N_("Net PnL"), (x) => fmt(x.net_pnl, 2)],
      [N_("Parameters"), (x) => Object.entries(x.params || {}).map((e) => e[0] + "=" + e[1]).join(", ")]], doc.top);
    if (!LWC) return;
    if (!state.resultChart) {
      state.resultChart = LWC.createChart($("r-chart"), chartOptions(200));
      state.resultSeries = state.resultChart.addSeries(LWC.LineSeries, { color: "#4c8dff", lineWidth: 2 });
    }
    let eq = num(doc.initial_balance) || 0; let last = -1; const pts = [];
    const first = doc.data && doc.data.first_ts_ms;
    if (first) { last = Math.floor(first / 1000); pts.push({ time: last, value: eq }); }
    trades.forEach((x) => { eq += num(x.net_pnl); const ts = Math.floor(x.exit_ts_ms / 1000); if (ts > last) { pts.push({ time: ts, value: eq }); last = ts; } });
    state.resultSeries.setData(pts); state.resultChart.timeScale().fitContent();
  }
  async function showLogs() {
    state.logBuffer = []; // live lines that arrive while the recent ones load
    try {
      const r = await api("/logs?limit=300");
      const seen = new Set(r.lines);
      $("log-lines").textContent = r.lines.concat(state.logBuffer.filter((l) => !seen.has(l))).join("\n");
    } finally { state.logBuffer = null; }
  }
  function addLog(line) {
    if (state.logBuffer) { state.logBuffer.push(line); return; }
    const el = $("log-lines"); el.textContent += (el.textContent ? "\n" : "") + line;
    if (el.textContent.length > 200000) el.textContent = el.textContent.slice(-150000);
    el.scrollTop = el.scrollHeight;
  }
  async function showSettings() {
    const r = await api("/settings");
    table($("settings-table"), [[N_("Setting"), (x) => x[0]], [N_("Value"), (x) => x[1]]], Object.entries(r.settings));
  }
  const VIEWS = { dashboard: showDashboard, trades: showTrades, strategy: showStrategy, risk: showRisk,
    backtests: showBacktests, logs: showLogs, settings: showSettings };
  function route() {
    const name = (location.hash || "#dashboard").slice(1);
    state.view = VIEWS[name] ? name : "dashboard";
    document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + state.view; });
    document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === state.view));
    if (state.started) quiet(VIEWS[state.view]());
  }
  window.addEventListener("hashchange", route);

  // ------------------------------------------------------------------ live channels
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      "/api/v1/ws?channels=metrics,trade_updates,alerts,logs,candles";
    const ws = new WebSocket(url, ["dort5bot.v1", "bearer." + state.token]);
    state.ws = ws;
    ws.onopen = () => { state.wsRetry = 0; $("live").classList.add("on"); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "metrics") {
        const d = msg.data;
        showStatus(Object.assign({}, state.status || {}, { mode: d.mode, mode_reason: d.mode_reason, phase: d.phase,
          health: d.health, uptime_s: d.uptime_s }));
        showPosition(d.position); showBalance({ equity: d.equity, balances: d.balances });
        if (state.equitySeries && d.equity !== null) {
          // one point per minute of exchange time, like the journal's; the current one moves
          const ts = Math.floor(msg.ts_ms / 60000) * 60;
          if (ts >= (state.equityLast || 0)) {
            const grew = ts > (state.equityLast || 0);
            state.equitySeries.update({ time: ts, value: Number(d.equity) }); state.equityLast = ts;
            if (grew) state.equity.timeScale().fitContent();
          }
        }
      } else if (msg.type === "candle") onCandle(msg.data);
      else if (msg.type === "alert") addAlert(msg);
      else if (msg.type === "log") { if (state.view === "logs") addLog(msg.data.line); }
      else if (msg.type === "position_opened" || msg.type === "trade_closed") {
        if (state.view === "dashboard") quiet(loadChart().then(loadEquity));
        if (state.view === "trades" && msg.type === "trade_closed") quiet(showTrades());
      } else if (msg.type === "state" && state.view === "dashboard") quiet(refreshStatus());
    };
    ws.onclose = () => {
      $("live").classList.remove("on"); state.ws = null;
      if (!state.started) return;
      state.wsRetry = Math.min(state.wsRetry + 1, 6);
      setTimeout(() => { if (state.started) quiet(api("/status").then(connect)); }, 500 * 2 ** state.wsRetry);
    };
  }
  function start() {
    state.started = true;
    route();
    if (!state.ws) connect();
  }

  // ------------------------------------------------------------------ boot
  $("lang").value = state.lang;
  $("lang").onchange = async () => {
    localStorage.setItem("dort5bot.lang", $("lang").value);
    await loadTexts($("lang").value); route();
  };
  document.addEventListener("DOMContentLoaded", async () => {
    await loadTexts(state.lang);
    route();
    if (!state.token) { showLogin(""); return; }
    try { await api("/status"); } catch (e) { return; }
    start();
  });
  setInterval(() => { if (state.started && !state.ws && state.view === "dashboard") quiet(refreshStatus()); }, 5000);
})();
