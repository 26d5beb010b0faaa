// The nodesage dashboard: plain browser JavaScript, no build step. Every
// request carries the bearer token the user gave (kept in sessionStorage for
// this tab only). Text from the node (log lines!) is only ever set as
// textContent, never parsed as HTML. Loaded as a module (strict, deferred);
// uPlot is the global of the classic script index.html loads before it.
import { sseParser } from '/ui/sse.js';

const TOKEN_KEY = 'nodesage.token';
const SEVERITY_ORDER = ['critical', 'warning', 'info'];
const $ = (id) => document.getElementById(id);

/** Creates an element with text and attributes; children may be nodes or strings. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c);
  return e;
}

class AuthError extends Error {}

function headers(extra) {
  const h = { ...(extra || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.authorization = `Bearer ${token}`;
  return h;
}

/** fetch with the token; JSON errors become Error(message); 401 asks for a token. */
async function api(path, opts) {
  const res = await fetch(path, { ...(opts || {}), headers: headers(opts?.headers) });
  if (res.status === 401) throw new AuthError('a token is needed');
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    try {
      msg = (await res.json()).error?.message || msg;
    } catch {}
    throw new Error(msg);
  }
  return res;
}
const getJson = async (path) => (await api(path)).json();

function showTokenForm(message) {
  $('token-form').hidden = false;
  $('main').hidden = true;
  $('token-error').textContent = message || '';
  $('token-input').focus();
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
  $('token-input').value = '';
  $('token-form').hidden = true;
  $('main').hidden = false;
  refresh();
});

const subjectText = (s) => (s.kind === 'Node' ? `node/${s.name}` : [s.namespace, s.name, s.container].filter(Boolean).join('/'));
const shortTime = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
const timeOnly = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

// ------------------------------------------------------------------ health
function renderStatus(s) {
  $('node-name').textContent = s.nodeName;
  document.title = `nodesage · ${s.nodeName}`;
  const model = s.model.state === 'none' ? 'rules-only (no model)' : `model ${s.model.id || ''} ${s.model.state}`;
  $('node-summary').textContent = `${s.mode} mode · nodesage ${s.version} · ${model}${s.rulesOnly && s.model.state !== 'none' ? ' (rules-only)' : ''}`;
  const failing = s.sources.filter((x) => x.state === 'failing' || x.state === 'stale');
  const health = $('health');
  health.replaceChildren(
    el('p', { class: failing.length ? 'sev-critical' : 'sev-ok', text: failing.length ? `${failing.length} source(s) not healthy` : 'All enabled sources healthy' }),
    s.model.reason ? el('p', { class: 'muted', text: s.model.reason }) : '',
  );
  $('sources').replaceChildren(
    ...s.sources.map((src) =>
      el(
        'li',
        { title: src.lastError || `${src.signals} signals, last ${shortTime(src.lastSignalAt) || 'never'}` },
        el('span', { class: `badge s-${src.state}`, text: `${src.name}: ${src.state}` }),
      ),
    ),
  );
}

// ---------------------------------------------------------------- findings
let findingsById = new Map();

function findingButton(f) {
  const d = f.diagnosis;
  return el(
    'button',
    { type: 'button', class: `finding sev-${f.severity}`, 'data-id': f.id, onclick: () => openFinding(f.id) },
    el('span', { class: 't', text: f.title }),
    el('span', { class: 'm', text: `${f.severity} · ${f.category} · ${subjectText(f.subject)} · ${f.count}× · last ${shortTime(f.lastSeen)}` }),
    d ? el('span', { class: 'd', text: d.summary }) : '',
  );
}

function renderFindings(items) {
  findingsById = new Map(items.map((f) => [f.id, f]));
  const box = $('findings');
  if (items.length === 0) {
    box.replaceChildren(el('p', { class: 'sev-ok', text: 'No open findings: nothing wrong was detected.' }));
    return;
  }
  const groups = SEVERITY_ORDER.map((sev) => {
    const list = items.filter((f) => f.severity === sev).sort((a, b) => Number(b.rootCause !== false) - Number(a.rootCause !== false) || (a.lastSeen < b.lastSeen ? 1 : -1));
    if (list.length === 0) return '';
    const roots = list.filter((f) => f.rootCause !== false);
    const caused = list.filter((f) => f.rootCause === false);
    return el(
      'div',
      { class: 'group' },
      el('h3', { class: `sev-${sev}`, text: `${sev} (${list.length})` }),
      roots.map(findingButton),
      caused.length ? el('div', { class: 'caused', 'aria-label': 'explained by another finding' }, caused.map(findingButton)) : '',
    );
  });
  box.replaceChildren(...groups);
}

function diagnosisBlock(d) {
  if (!d) return el('p', { class: 'muted', text: 'No diagnosis yet (queued; detection never waits for it).' });
  return el(
    'div',
    { class: 'diagnosis' },
    el('h3', { text: 'Diagnosis' }),
    el('p', { text: d.summary }),
    el('p', {}, el('strong', { text: 'Probable cause: ' }), d.probableCause),
    d.nextSteps.length ? el('h4', { text: 'Next steps' }) : '',
    d.nextSteps.length ? el('ol', {}, d.nextSteps.map((s) => el('li', { text: s }))) : '',
    d.commands.length ? el('h4', { text: 'Read-only commands' }) : '',
    d.commands.map((c) => el('pre', {}, el('code', { text: c }))),
    el('p', { class: 'muted', text: `by ${d.diagnoser}, confidence ${d.confidence}${d.fallback ? ` (model answer replaced: ${d.fallback})` : ''}` }),
  );
}

async function openFinding(id) {
  const panel = $('detail');
  const body = $('detail-body');
  panel.hidden = false;
  body.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  try {
    const f = await getJson(`/v1/findings/${id}`);
    const cited = new Set(f.diagnosis?.evidenceRefs || []);
    const causes = (f.causes || []).map((c) => findingsById.get(c) || { id: c, title: c, severity: 'info', category: '', subject: { kind: 'Node', name: '?' } });
    const consequences = [...findingsById.values()].filter((x) => (x.causes || []).includes(id));
    $('detail-title').textContent = f.title;
    body.replaceChildren(
      el('p', { text: f.message }),
      el('p', { class: 'muted', text: `${f.severity} · ${f.category} · ${subjectText(f.subject)} · ${f.status} · seen ${f.count}× from ${shortTime(f.firstSeen)} to ${shortTime(f.lastSeen)} · id ${f.id}` }),
      causes.length ? el('div', {}, el('h3', { text: 'Caused by' }), causes.map(findingButton)) : '',
      consequences.length ? el('div', {}, el('h3', { text: 'Causes' }), consequences.map(findingButton)) : '',
      diagnosisBlock(f.diagnosis),
      el('h3', { text: `Evidence (${f.evidence.length})` }),
      el(
        'ol',
        { class: 'evidence', start: 0 },
        f.evidence.map((e, i) =>
          el('li', { class: cited.has(i) ? 'cited' : '' }, el('span', { class: 'src', text: `${shortTime(e.at)} ${e.source}${cited.has(i) ? ' (cited)' : ''}: ` }), e.text),
        ),
      ),
      feedbackBlock(f),
    );
    panel.focus();
  } catch (err) {
    if (err instanceof AuthError) return showTokenForm();
    body.replaceChildren(el('p', { class: 'error', text: err.message }));
  }
}

function feedbackBlock(f) {
  const result = el('span', { class: 'muted', role: 'status' });
  const send = (helpful) => async () => {
    try {
      await api(`/v1/findings/${f.id}/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ helpful }) });
      result.textContent = 'Thanks: recorded on this node.';
    } catch (err) {
      result.textContent = err.message;
    }
  };
  return el(
    'div',
    { class: 'feedback' },
    el('span', { text: 'Was this diagnosis helpful?' }),
    el('button', { type: 'button', onclick: send(true), text: 'Helpful' }),
    el('button', { type: 'button', onclick: send(false), text: 'Not helpful' }),
    result,
  );
}

$('detail-close').addEventListener('click', () => {
  $('detail').hidden = true;
});

// ---------------------------------------------------------------- timeline
function renderTimeline(items) {
  const list = $('timeline');
  if (items.length === 0) {
    list.replaceChildren(el('li', { class: 'muted', text: 'Nothing happened in the last 24 h.' }));
    return;
  }
  list.replaceChildren(
    ...items.map((e) =>
      el(
        'li',
        {},
        el('time', { datetime: e.at, text: timeOnly(e.at) }),
        el('span', { class: `badge sev-${e.finding.severity}`, text: e.kind }),
        ' ',
        el('a', { href: `#${e.finding.id}`, onclick: (ev) => (ev.preventDefault(), openFinding(e.finding.id)), text: e.finding.title }),
        e.detail ? el('span', { class: 'muted', text: ` (${e.detail})` }) : '',
      ),
    ),
  );
}

// ------------------------------------------------------------------ charts
const CHARTS = [
  ['cpu', 'CPU busy %'],
  ['memory', 'Memory used %'],
  ['disk', 'Disk used %'],
  ['inodes', 'Inodes used %'],
];
const plots = new Map();
const COLOURS = ['#2453c7', '#b42318', '#1e7a3c', '#a15c00', '#6f42c1', '#35607f'];

async function renderCharts() {
  const box = $('charts');
  for (const [series, title] of CHARTS) {
    let holder = document.getElementById(`chart-${series}`);
    if (!holder) {
      holder = el('figure', { class: 'chart', id: `chart-${series}`, 'aria-label': title }, el('h3', { text: title }), el('div', { class: 'plot' }));
      holder.style.margin = '0';
      box.append(holder);
    }
    const plotBox = holder.querySelector('.plot');
    const h = await getJson(`/v1/metrics/history?series=${series}&since=24h`);
    const lines = h.lines.filter((l) => l.points.length > 0);
    if (lines.length === 0 || typeof uPlot === 'undefined') {
      plots.get(series)?.destroy();
      plots.delete(series);
      plotBox.replaceChildren(el('p', { class: 'empty', text: lines.length === 0 ? 'No samples yet.' : 'Chart library missing.' }));
      continue;
    }
    // One x axis: the union of every line's bucket times.
    const xs = [...new Set(lines.flatMap((l) => l.points.map((p) => Date.parse(p.at) / 1000)))].sort((a, b) => a - b);
    const data = [xs, ...lines.map((l) => {
      const m = new Map(l.points.map((p) => [Date.parse(p.at) / 1000, Math.round(p.mean * 10) / 10]));
      return xs.map((x) => (m.has(x) ? m.get(x) : null));
    })];
    const width = Math.max(200, plotBox.clientWidth || box.clientWidth || 300);
    const opts = {
      width,
      height: 150,
      // The x axis always spans the last 24 h: with few samples uPlot would stretch it over years.
      scales: { x: { time: true, range: () => [Date.now() / 1000 - 86400, Date.now() / 1000] }, y: { range: [0, 100] } },
      legend: { show: lines.length > 1 },
      series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: false }))],
      axes: [{ stroke: getComputedStyle(document.body).color }, { stroke: getComputedStyle(document.body).color, size: 40 }],
    };
    plots.get(series)?.destroy();
    plotBox.replaceChildren();
    plots.set(series, new uPlot(opts, data, plotBox));
    plotBox.setAttribute('role', 'img');
    const last = lines.map((l) => `${l.label} ${Math.round(l.points.at(-1).mean)}%`).join(', ');
    plotBox.setAttribute('aria-label', `${title} over 24 h; latest: ${last}`);
  }
}

window.addEventListener('resize', () => {
  for (const [series, plot] of plots) {
    const w = document.getElementById(`chart-${series}`)?.querySelector('.plot')?.clientWidth;
    if (w) plot.setSize({ width: w, height: 150 });
  }
});

// --------------------------------------------------------------------- ask
function citationItem(s) {
  if (s.kind === 'finding') {
    return el('li', {}, `[${s.ref}] `, el('a', { href: `#${s.id}`, onclick: (ev) => (ev.preventDefault(), openFinding(s.id)), text: s.title }), el('span', { class: 'muted', text: ` finding, ${s.severity || ''} ${s.status || ''}` }));
  }
  return el('li', {}, `[${s.ref}] `, el('span', { text: s.title }), el('span', { class: 'muted', text: ' runbook' }));
}

$('ask-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const question = $('ask-input').value.trim();
  if (!question) return;
  const answer = $('ask-answer');
  const citations = $('ask-citations');
  const meta = $('ask-meta');
  answer.textContent = '';
  citations.replaceChildren();
  meta.textContent = 'Thinking…';
  $('ask-submit').disabled = true;
  $('ask-answer').setAttribute('aria-busy', 'true');
  let sources = [];
  try {
    const res = await api('/v1/ask', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ question }) });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const push = sseParser((event, data) => {
      const v = JSON.parse(data);
      if (event === 'citations') {
        sources = v.sources || [];
        citations.replaceChildren(...sources.map(citationItem));
      } else if (event === 'token') {
        answer.textContent += v.text || '';
      } else if (event === 'done') {
        if (!answer.textContent) answer.textContent = v.answer || '';
        const cited = new Set([...(v.citations?.findings || []), ...(v.citations?.runbooks || [])]);
        const shown = sources.filter((s) => cited.has(s.id));
        if (shown.length) citations.replaceChildren(...shown.map(citationItem));
        meta.textContent = `${v.diagnoser}${v.note ? `: ${v.note}` : ''} · ${(v.latencyMs / 1000).toFixed(1)} s · ${shown.length ? 'cited sources above' : 'sources given as context above'}`;
      } else if (event === 'error') {
        meta.textContent = v.error?.message || 'the answer failed';
      }
    });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      push(value);
    }
  } catch (err) {
    if (err instanceof AuthError) return showTokenForm();
    meta.textContent = err.message;
  } finally {
    $('ask-submit').disabled = false;
    answer.removeAttribute('aria-busy');
  }
});

// ----------------------------------------------------------------- refresh
async function refresh() {
  try {
    const [status, page, timeline] = await Promise.all([getJson('/v1/status'), getJson('/v1/findings?status=open&limit=500'), getJson('/v1/timeline?since=24h&limit=200')]);
    renderStatus(status);
    renderFindings(page.items);
    renderTimeline(timeline.items);
    await renderCharts();
    document.body.dataset.loaded = 'true';
  } catch (err) {
    if (err instanceof AuthError) return showTokenForm(sessionStorage.getItem(TOKEN_KEY) ? 'That token was refused.' : '');
    $('node-summary').textContent = `Cannot reach the agent: ${err.message}`;
  }
}

refresh();
setInterval(() => {
  if (!$('main').hidden && document.visibilityState === 'visible') refresh();
}, 30_000);
