// rfqueue's Fleet page: draws /rfqueue/api/fleet every two seconds and counts pauses down
// between draws, on the server's clock. Plain DOM, no library: Flower's own scripts vary
// from one Flower version to the next.
(function () {
    'use strict';

    var root = document.getElementById('rfqueue-fleet');
    if (!root) {
        return;
    }
    var REFRESH_MS = 2000;
    var urls = root.dataset;  // absolute paths, made by Flower's reverse_url
    var doc = null;
    var offset = 0;  // the server's clock minus this browser's, in seconds
    var lastGood = null;

    // The buttons a worker can show, by the state shown. An action is drawn only when the
    // server lists it in doc.actions. Drain: no new tasks, it finishes what it runs.
    var BUTTONS = [
        {action: 'pause', label: 'Pause', css: 'btn-outline-warning', states: ['up', 'down']},
        {action: 'drain', label: 'Drain', css: 'btn-outline-info', states: ['up', 'paused', 'ejected']},
        {action: 'resume', label: 'Resume', css: 'btn-success', states: ['paused', 'ejected', 'draining']}
    ];
    var NUMERIC = [4, 5, 6];  // heartbeat, queue depth, routed: right-aligned like their headers
    var BADGES = {
        up: 'bg-success', paused: 'bg-warning text-dark', ejected: 'bg-danger',
        draining: 'bg-info text-dark', down: 'bg-secondary'
    };

    function esc(value) {
        return String(value === null || value === undefined ? '' : value)
            .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
            .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
    }

    // Against the origin: a page opened as http://user:password@host/... would otherwise
    // make URLs with the credentials in them, which fetch() refuses.
    function here(path) {
        return location.origin + path;
    }

    function serverNow() {
        return Date.now() / 1000 + offset;
    }

    function duration(seconds) {
        var s = Math.max(0, Math.ceil(seconds));
        var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
        var pad = function (n) { return (n < 10 ? '0' : '') + n; };
        if (h) { return h + 'h ' + pad(m) + 'm'; }
        if (m) { return m + 'm ' + pad(r) + 's'; }
        return r + 's';
    }

    function clock(epoch) {
        return epoch ? new Date(epoch * 1000).toLocaleTimeString([], {hour12: false}) : '';
    }

    function countdownText(until) {
        var left = until - serverNow();
        return left > 0 ? duration(left) + ' left' : 'ending…';
    }

    function ageText(heartbeat) {
        return heartbeat ? Math.max(0, serverNow() - heartbeat).toFixed(1) + ' s ago' : '—';
    }

    function workerLink(name) {
        return urls.workerUrl.replace('__WORKER__', encodeURIComponent(name));
    }

    function stateCell(w) {
        var html = '<span class="badge rfqueue-state ' + (BADGES[w.shown] || 'bg-secondary') +
            '">' + esc(w.shown) + '</span>';
        if (w.remaining !== null && w.until) {
            html += ' <span class="rfqueue-countdown" data-until="' + w.until + '">' +
                countdownText(w.until) + '</span>';
        }
        if (w.silent) {
            html += ' <span class="badge bg-danger-subtle text-danger-emphasis" ' +
                'title="no heartbeat for longer than the timeout: routers skip it">silent</span>';
        }
        return html;
    }

    function poolsCell(w) {
        if (!w.pools || !w.pools.length) {
            return '<span class="text-muted">—</span>';
        }
        return w.pools.map(function (pool) {
            var depth = w.pool_depths ? w.pool_depths[pool] : null;
            return '<code>' + esc(pool) + '</code>' +
                (depth === null || depth === undefined ? '' : ' <span class="text-muted">(' +
                    esc(depth) + ' waiting)</span>');
        }).join('<br>');
    }

    function actionsCell(w) {
        var allowed = doc.actions || [];
        return BUTTONS.filter(function (b) {
            return allowed.indexOf(b.action) >= 0 && b.states.indexOf(w.shown) >= 0;
        }).map(function (b) {
            return '<button type="button" class="btn btn-sm ' + b.css + '" data-action="' +
                b.action + '" data-worker="' + esc(w.worker) + '">' + b.label + '</button>';
        }).join(' ');
    }

    function cells(w) {
        var tasks = urls.tasksUrl + '?worker=' + encodeURIComponent(w.worker);
        // An up worker's reason is only how it came back (start, manual, expired): not shown.
        var why = w.shown !== 'up';
        var reason = why && w.reason ? esc(w.reason) : '<span class="text-muted">—</span>';
        if (why && w.note) {
            reason += '<div class="small text-muted">' + esc(w.note) + '</div>';
        }
        return [
            '<a href="' + esc(workerLink(w.worker)) + '">' + esc(w.worker) + '</a>' +
                '<div class="small text-muted"><code>' + esc(w.queue) + '</code></div>',
            stateCell(w),
            reason,
            poolsCell(w),
            '<span class="rfqueue-age" data-heartbeat="' + esc(w.heartbeat || '') + '">' +
                ageText(w.heartbeat) + '</span>',
            '<span class="rfqueue-depth">' + (w.depth === null ? '?' : esc(w.depth)) + '</span>',
            esc(w.routed) + ' <a class="small" href="' + esc(tasks) + '">tasks</a>',
            actionsCell(w)
        ];
    }

    function drawWorkers() {
        var body = root.querySelector('#rfqueue-workers tbody');
        var seen = {};
        doc.workers.forEach(function (w, index) {
            var row = body.querySelector('tr[data-worker="' + CSS.escape(w.worker) + '"]');
            if (!row) {
                row = document.createElement('tr');
                row.dataset.worker = w.worker;
                cells(w).forEach(function (html, i) {
                    var td = document.createElement('td');
                    td.className = NUMERIC.indexOf(i) >= 0 ? 'text-end text-nowrap' : '';
                    row.appendChild(td);
                });
            }
            if (body.children[index] !== row) {
                body.insertBefore(row, body.children[index] || null);
            }
            row.className = 'rfqueue-row rfqueue-' + w.shown;
            cells(w).forEach(function (html, i) {
                // Only what changed is replaced: a button under the pointer stays the same node.
                if (row.cells[i].dataset.html !== html) {
                    row.cells[i].innerHTML = html;
                    row.cells[i].dataset.html = html;
                }
            });
            seen[w.worker] = true;
        });
        Array.prototype.slice.call(body.children).forEach(function (row) {
            if (!seen[row.dataset.worker]) {
                body.removeChild(row);
            }
        });
    }

    function drawSummary() {
        var b = doc.budget;
        var known = doc.workers.filter(function (w) { return w.depth !== null; });
        var waiting = known.reduce(function (sum, w) { return sum + w.depth; }, 0);
        document.getElementById('rfqueue-up').textContent = b.up + ' of ' + b.total;
        document.getElementById('rfqueue-budget').textContent = b.not_up + ' of ' + b.limit;
        document.getElementById('rfqueue-budget-note').textContent =
            'not up: ' + b.not_up + ' (max_paused ' + b.max_paused + ', min_up ' + b.min_up +
            '); chaos may pause ' + b.room + ' more';
        document.getElementById('rfqueue-waiting').textContent = doc.depths_known ? waiting : '?';
    }

    function drawEvents() {
        var body = root.querySelector('#rfqueue-events tbody');
        body.innerHTML = doc.events.map(function (e) {
            return '<tr class="rfqueue-event"><td>' + esc(clock(e.time)) + '</td><td>' +
                esc(e.worker) + '</td><td>' + esc(e.action) + '</td><td>' + esc(e.reason) +
                '</td><td>' + esc(clock(e.until)) + '</td><td>' + esc(e.note) + '</td></tr>';
        }).join('');
    }

    function tick() {
        root.querySelectorAll('.rfqueue-countdown').forEach(function (span) {
            span.textContent = countdownText(parseFloat(span.dataset.until));
        });
        root.querySelectorAll('.rfqueue-age').forEach(function (span) {
            span.textContent = ageText(parseFloat(span.dataset.heartbeat));
        });
    }

    function setStatus(ok, text) {
        document.getElementById('rfqueue-live').classList.toggle('rfqueue-dot-stale', !ok);
        document.getElementById('rfqueue-refreshed').textContent = text;
    }

    function refresh() {
        return fetch(here(urls.api), {credentials: 'same-origin', cache: 'no-store'})
            .then(function (response) {
                return response.json().then(function (body) {
                    if (!response.ok) {
                        throw new Error(body.error || response.statusText);
                    }
                    return body;
                });
            })
            .then(function (body) {
                doc = body;
                offset = body.now - Date.now() / 1000;
                lastGood = body.now;
                drawWorkers();
                drawSummary();
                drawEvents();
                setStatus(true, 'updated ' + clock(body.now));
            })
            .catch(function (error) {
                setStatus(false, 'cannot refresh: ' + error.message +
                    (lastGood ? ' (showing ' + clock(lastGood) + ')' : ''));
            });
    }

    function say(ok, text) {
        var box = document.getElementById('rfqueue-message');
        box.className = 'alert py-2 ' + (ok ? 'alert-success' : 'alert-danger');
        box.textContent = text;
    }

    function xsrfToken() {
        var match = document.cookie.match('(^|;)\\s*_xsrf\\s*=\\s*([^;]+)');
        return match ? decodeURIComponent(match.pop()) : '';
    }

    function act(action, worker, button) {
        var form = new URLSearchParams();
        if (action === 'pause') {
            form.set('seconds', document.getElementById('rfqueue-seconds').value);
        }
        if (action === 'pause' || action === 'drain') {
            form.set('reason', document.getElementById('rfqueue-reason').value);
        }
        var url = urls.action.replace('__ACTION__', action)
            .replace('__WORKER__', encodeURIComponent(worker));
        button.disabled = true;
        fetch(here(url), {
            method: 'POST', credentials: 'same-origin', body: form,
            headers: {'X-XSRFToken': xsrfToken()}
        }).then(function (response) {
            return response.text().then(function (text) {
                var body = {};
                try { body = JSON.parse(text); } catch (e) { body = {error: text}; }
                say(response.ok, response.ok ? body.message :
                    (body.error || response.status + ' ' + response.statusText));
            });
        }).catch(function (error) {
            say(false, 'cannot reach Flower: ' + error.message);
        }).then(function () {
            button.disabled = false;
            return refresh();
        });
    }

    root.querySelector('#rfqueue-workers tbody').addEventListener('click', function (event) {
        var button = event.target.closest('button[data-action]');
        if (button) {
            act(button.dataset.action, button.dataset.worker, button);
        }
    });

    refresh();
    setInterval(refresh, REFRESH_MS);
    setInterval(tick, 250);
})();
