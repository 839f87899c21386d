/* shotflow board: the review controls, the one place they live.
 *
 *   [data-action="pick"][data-shot-id][data-take]   pick a take of a shot
 *   [data-action="approve"] / [data-action="reject"]   approve a shot / send it back (status "changes")
 *   [data-action="note"] + the panel's .note-text    add a note
 *   [data-action="export-review"]                    download review.json (a page opened from disk)
 *
 * Opened from disk (shotflow board), decisions stay in the page (and in localStorage, so a
 * reload keeps them) until they leave it as review.json, which `shotflow review apply` writes
 * into the storyboard:
 *   {"storyboard": "storyboard.yaml",
 *    "shots": {"scene/shot": {"pick": 2, "review": {"status": "approved", "notes": ["..."]}}}}
 * Served by `shotflow watch` (a <meta name="shotflow-token"> in the head), each decision is sent to the server at once;
 * it writes the storyboard, and the board updates as after any edit of the file.
 */
(function () {
  'use strict';
  var body = document.body;
  var storyboard = body.getAttribute('data-storyboard') || 'storyboard.yaml';
  var storeKey = 'shotflow-review:' + storyboard + ':' + document.title;
  var decisions = load();  // shot id -> {pick, status, notes: [...]}, made in this page

  function load() {
    try { return JSON.parse(window.localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; }
  }
  function save() {
    try { window.localStorage.setItem(storeKey, JSON.stringify(decisions)); } catch (e) { /* private mode */ }
  }
  function live() { return !!document.querySelector('meta[name="shotflow-token"]'); }
  function panelOf(id) { return document.querySelector('article.panel[data-shot-id="' + CSS.escape(id) + '"]'); }
  function entry(id) { return decisions[id] || (decisions[id] = {notes: []}); }
  function say(text, isError) {
    var el = document.getElementById('review-pending');
    if (!el) return;
    el.textContent = text;
    el.classList.toggle('is-error', !!isError);
  }
  function pendingCount() {
    return Object.keys(decisions).filter(function (id) {
      var d = decisions[id];
      return d.pick || d.status || (d.notes && d.notes.length);
    }).length;
  }
  function showPending() {
    var n = pendingCount();
    say(n ? n + (n === 1 ? ' shot' : ' shots') + ' with decisions not exported yet' : '');
    body.setAttribute('data-review-pending', String(n));
  }

  // -- showing a decision in the page (static mode) -------------------------------------

  function showPick(panel, take) {
    panel.setAttribute('data-pick', String(take));
    Array.prototype.forEach.call(panel.querySelectorAll('.take'), function (li) {
      var on = li.getAttribute('data-take') === String(take);
      li.classList.toggle('is-picked', on);
      var button = li.querySelector('[data-action="pick"]');
      if (button) { button.setAttribute('aria-pressed', on ? 'true' : 'false'); button.textContent = on ? 'picked' : 'pick'; }
      var label = li.querySelector('span');
      if (label) label.textContent = 'take ' + li.getAttribute('data-take') + (on ? ' · picked' : '');
      var thumb = li.querySelector('img');
      var main = panel.querySelector('.frame img.picked');
      if (on && thumb && main) main.src = thumb.src;
    });
  }
  function showStatus(panel, status) {
    panel.setAttribute('data-review', status);
    panel.classList.toggle('is-approved', status === 'approved');
    panel.classList.toggle('is-changes', status === 'changes');
    var text = panel.querySelector('.review-status');
    if (text) text.textContent = status === 'approved' ? 'approved' : 'changes requested';
    var approve = panel.querySelector('[data-action="approve"]'), reject = panel.querySelector('[data-action="reject"]');
    if (approve) approve.setAttribute('aria-pressed', status === 'approved' ? 'true' : 'false');
    if (reject) reject.setAttribute('aria-pressed', status === 'changes' ? 'true' : 'false');
  }
  function showNote(panel, note) {
    var list = panel.querySelector('.review-notes');
    if (!list) return;
    var li = document.createElement('li');
    li.className = 'is-new';
    li.textContent = note;
    list.appendChild(li);
  }
  function showAll() {
    Object.keys(decisions).forEach(function (id) {
      var panel = panelOf(id), d = decisions[id];
      if (!panel) { delete decisions[id]; return; }
      // what the storyboard already says (a review applied since) is no longer a pending decision
      if (d.pick && String(d.pick) === panel.getAttribute('data-pick')) delete d.pick;
      if (d.status && d.status === panel.getAttribute('data-review')) delete d.status;
      var have = Array.prototype.map.call(panel.querySelectorAll('.review-notes li'), function (li) {
        return li.textContent;
      });
      d.notes = (d.notes || []).filter(function (note) { return have.indexOf(note) < 0; });
      if (!d.pick && !d.status && !d.notes.length) { delete decisions[id]; return; }
      if (d.pick) showPick(panel, d.pick);
      if (d.status) showStatus(panel, d.status);
      (d.notes || []).forEach(function (note) { showNote(panel, note); });
    });
    showPending();
  }

  // -- the two ways a decision goes ------------------------------------------------------

  function send(request, button) {
    var token = document.querySelector('meta[name="shotflow-token"]');
    if (button) button.disabled = true;
    say('saving…');
    return fetch('api/review', {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-Shotflow-Token': token ? token.content : ''},
      body: JSON.stringify(request)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok) throw new Error(answer.error || ('the server answered ' + response.status));
        say('saved to ' + (answer.written && answer.written.length ? answer.written.join(', ') : storyboard));
        return true;
      });
    }).catch(function (error) {
      say(String(error.message || error), true);
      return false;
    }).then(function (ok) {
      if (button) button.disabled = false;
      return ok;
    });
  }

  function decide(action, id, button) {
    var panel = panelOf(id);
    var request = {shot: id, action: action};
    if (action === 'pick') request.take = parseInt(button.getAttribute('data-take'), 10);
    if (action === 'note') {
      var box = panel && panel.querySelector('.note-text');
      var text = box ? box.value.trim() : '';
      if (!text) { if (box) box.focus(); return; }
      request.text = text;
    }
    if (live()) {
      send(request, button).then(function (ok) {
        if (!ok || action !== 'note') return;
        // the panel may have been redrawn while the note was on its way: clear whichever box holds it
        var now = panelOf(id), current = now && now.querySelector('.note-text');
        [box, current].forEach(function (b) { if (b && b.value.trim() === request.text) b.value = ''; });
      });
      return;
    }
    var d = entry(id);
    if (action === 'pick') { d.pick = request.take; showPick(panel, request.take); }
    if (action === 'approve' || action === 'reject') {
      d.status = action === 'approve' ? 'approved' : 'changes';
      showStatus(panel, d.status);
    }
    if (action === 'note' && d.notes.indexOf(request.text) < 0) {
      d.notes.push(request.text);
      showNote(panel, request.text);
      box.value = '';
    }
    save();
    showPending();
  }

  function reviewJson() {
    var out = {storyboard: storyboard, shots: {}};
    Object.keys(decisions).sort().forEach(function (id) {
      var d = decisions[id], shot = {}, review = {};
      if (d.pick) shot.pick = d.pick;
      if (d.status) review.status = d.status;
      if (d.notes && d.notes.length) review.notes = d.notes.slice();
      if (review.status || review.notes) shot.review = review;
      if (shot.pick || shot.review) out.shots[id] = shot;
    });
    return JSON.stringify(out, null, 2) + '\n';
  }

  function exportReview() {
    var url = URL.createObjectURL(new Blob([reviewJson()], {type: 'application/json'}));
    var link = document.createElement('a');
    link.href = url;
    link.download = 'review.json';
    body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(url); link.remove(); }, 1000);
    var n = pendingCount();
    say('exported ' + n + (n === 1 ? ' shot' : ' shots') + ': shotflow review apply review.json');
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest('[data-action]');
    if (!button) return;
    var action = button.getAttribute('data-action');
    if (action === 'export-review') { exportReview(); return; }
    var id = button.getAttribute('data-shot-id');
    if (id && (action === 'pick' || action === 'approve' || action === 'reject' || action === 'note')) {
      event.preventDefault();
      decide(action, id, button);
    }
  });
  document.addEventListener('keydown', function (event) {
    var box = event.target.closest && event.target.closest('.note-text');
    if (box && event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      var button = box.parentNode.querySelector('[data-action="note"]');
      if (button) button.click();
    }
  });

  window.shotflowReview = {json: reviewJson, decisions: function () { return decisions; }};
  if (!live()) { showAll(); save(); }
})();
