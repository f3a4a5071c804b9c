// rfqueue on Flower's own pages, linked by Tornado's Template UI module (rfqueue/flower/app.py):
// a Fleet link in the navigation bar, a badge on each worker of Flower's worker list that
// is not up in rfqueue's table (Flower shows it Online), and rfqueue's state on a worker's
// page. Flower's templates are left as they are; this only adds to the page it is on.
(function () {
    'use strict';

    var script = document.currentScript;
    if (!script) {
        return;
    }
    // <origin><url_prefix>/rfqueue, without any credentials the page's URL holds (fetch refuses them)
    var fleetPath = new URL(script.src).pathname.replace(/\/static\/flower-extras\.js$/, '');
    var base = location.origin + fleetPath;
    var states = {};
    var offset = 0;
    var LABELS = {paused: 'paused', ejected: 'ejected', draining: 'draining', down: 'down'};
    var BADGES = {paused: 'bg-warning text-dark', ejected: 'bg-danger',
                  draining: 'bg-info text-dark', down: 'bg-secondary'};

    function addNavLink() {
        var nav = document.querySelector('nav .navbar-nav');
        if (!nav || nav.querySelector('.rfqueue-nav')) {
            return;
        }
        var item = document.createElement('li');
        item.className = 'nav-item rfqueue-nav';
        var link = document.createElement('a');
        var here = location.pathname.replace(/\/$/, '') === fleetPath;
        link.className = 'nav-link' + (here ? ' active' : '');
        if (here) {
            link.setAttribute('aria-current', 'page');
        }
        link.href = base;
        link.textContent = 'Fleet';
        item.appendChild(link);
        nav.appendChild(item);
    }

    function label(w) {
        var text = 'rfqueue: ' + (LABELS[w.shown] || w.shown);
        if (w.until && (w.shown === 'paused' || w.shown === 'ejected')) {
            var left = Math.max(0, Math.ceil(w.until - (Date.now() / 1000 + offset)));
            text += ' ' + left + 's';
        }
        return text;
    }

    function markWorkerList(table) {
        Array.prototype.forEach.call(table.querySelectorAll('tbody tr'), function (row) {
            var name = row.id || (row.cells[0] && row.cells[0].textContent.trim());
            var w = states[name] || states[decodeURIComponent(name || '')];
            var cell = row.cells[1];
            if (!cell) {
                return;
            }
            var badge = cell.querySelector('.rfqueue-badge');
            if (!w || w.shown === 'up') {
                if (badge) { badge.remove(); }
                return;
            }
            if (!badge) {
                badge = document.createElement('span');
                cell.appendChild(badge);
            }
            var css = 'badge rfqueue-badge ' + (BADGES[w.shown] || 'bg-secondary');
            if (badge.className !== css) { badge.className = css; }
            var text = label(w);
            if (badge.textContent !== text) { badge.textContent = text; }
            badge.title = 'rfqueue takes no new tasks to this worker: ' + (w.reason || w.shown);
        });
    }

    function markWorkerPage(name) {
        var w = states[name];
        var box = document.getElementById('rfqueue-worker-state');
        if (!w) {
            if (box) { box.remove(); }
            return;
        }
        if (!box) {
            box = document.createElement('div');
            box.id = 'rfqueue-worker-state';
            var nav = document.querySelector('nav');
            nav.parentNode.insertBefore(box, nav.nextSibling);
        }
        box.className = 'alert mx-3 my-2 py-2 ' + (w.shown === 'up' ? 'alert-light' : 'alert-warning');
        box.textContent = label(w) + (w.reason ? ' (' + w.reason + ')' : '') + ' · queue ' +
            w.queue + ': ' + (w.depth === null ? '?' : w.depth) + ' waiting · ';
        var link = document.createElement('a');
        link.href = base;
        link.textContent = 'Fleet page';
        box.appendChild(link);
    }

    function poll(draw) {
        fetch(base + '/api/fleet', {credentials: 'same-origin', cache: 'no-store'})
            .then(function (response) { return response.ok ? response.json() : null; })
            .then(function (doc) {
                if (!doc) { return; }
                offset = doc.now - Date.now() / 1000;
                states = {};
                doc.workers.forEach(function (w) { states[w.worker] = w; });
                draw();
            })
            .catch(function () { /* Flower's page goes on without rfqueue's marks */ });
    }

    addNavLink();
    var table = document.getElementById('workers-table');
    var page = /\/worker\/([^/]+)\/?$/.exec(location.pathname);
    var draw = null;
    if (table) {
        draw = function () { markWorkerList(table); };
        // Flower redraws its rows every second: mark them again whenever they change.
        new MutationObserver(draw).observe(table, {childList: true, subtree: true});
    } else if (page) {
        draw = function () { markWorkerPage(decodeURIComponent(page[1])); };
    }
    if (draw) {
        poll(draw);
        setInterval(function () { poll(draw); }, 2000);
        setInterval(draw, 1000);
    }
})();
