/* shotflow watch: the page's side of the live board.
 *
 * Listens to the server's events (EventSource "events"):
 *   hello   {version, errors}      a board older than the server's reloads; errors are shown
 *   update  {version, errors, panels: {id: html}, sections, header, summary}
 *           only the panels that changed are replaced (the scroll position stays); "sections"
 *           replaces every scene when shots were added, removed or moved; errors (file:line:col,
 *           as the CLI prints them) are shown above the board, which keeps its last good frames
 *   panels  {panels: {id: html}}   a shot whose new frame is ready while the round goes on
 *   status  {text}                 how far a render is
 * The review controls are review.js's; served here, they send each decision to the server.
 * After every update body[data-live-version] is the round's number (tests wait on it).
 */
(function () {
  'use strict';
  var body = document.body;
  body.setAttribute('data-live', '1');
  var meta = document.querySelector('meta[name="shotflow-version"]');
  var version = meta ? parseInt(meta.content, 10) : 0;
  body.setAttribute('data-live-version', String(version));
  body.setAttribute('data-live-errors', '0');

  var bar = document.createElement('div');
  bar.id = 'live-status';
  bar.setAttribute('role', 'status');
  bar.setAttribute('aria-live', 'polite');
  bar.textContent = 'live: connecting…';
  body.insertBefore(bar, body.firstChild);

  function show(text, errors) {
    bar.classList.toggle('is-error', !!(errors && errors.length));
    bar.textContent = '';
    var line = document.createElement('div');
    line.textContent = text;
    bar.appendChild(line);
    if (errors && errors.length) {
      var pre = document.createElement('pre');
      pre.className = 'live-errors';
      pre.textContent = errors.join('\n');
      bar.appendChild(pre);
    }
    body.setAttribute('data-live-errors', String(errors ? errors.length : 0));
  }

  function fragment(html) {
    var template = document.createElement('template');
    template.innerHTML = html;
    return template.content;
  }

  function panelOf(id) { return document.querySelector('article.panel[data-shot-id="' + CSS.escape(id) + '"]'); }

  function replacePanels(panels) {
    Object.keys(panels || {}).forEach(function (id) {
      var old = panelOf(id);
      if (!old) return;
      var box = old.querySelector('.note-text');
      var draft = box ? box.value : '';
      var next = fragment(panels[id]);
      var panel = next.firstElementChild;
      old.replaceWith(next);
      var again = panel && panel.querySelector('.note-text');
      if (again && draft) again.value = draft;  // a note being typed survives the redraw
    });
  }

  function apply(update) {
    var y = window.scrollY;
    if (update.header) {
      var header = document.querySelector('header.top');
      if (header) header.replaceWith(fragment(update.header));
    }
    if (update.sections !== null && update.sections !== undefined) {
      Array.prototype.forEach.call(document.querySelectorAll('body > section'), function (s) { s.remove(); });
      var after = document.querySelector('header.top') || bar;
      after.after(fragment(update.sections));
    }
    replacePanels(update.panels);
    window.scrollTo(window.scrollX, y);
    var when = new Date().toLocaleTimeString();
    if (update.errors && update.errors.length) {
      show('The storyboard has errors; the board shows the last good frames (' + when + '):', update.errors);
    } else {
      show('live · ' + (update.summary || 'up to date') + ' · ' + when, []);
    }
    version = update.version;
    body.setAttribute('data-live-version', String(version));
    document.dispatchEvent(new CustomEvent('shotflow:update', {detail: update}));
  }

  var source = new EventSource('events');
  source.addEventListener('hello', function (event) {
    var hello = JSON.parse(event.data);
    if (hello.version > version) { window.location.reload(); return; }
    if (hello.errors && hello.errors.length) show('The storyboard has errors; the board shows the last good frames:',
                                                  hello.errors);
    else show('live · watching ' + (body.getAttribute('data-storyboard') || 'the storyboard'), []);
  });
  source.addEventListener('update', function (event) { apply(JSON.parse(event.data)); });
  source.addEventListener('panels', function (event) {
    var y = window.scrollY;
    replacePanels(JSON.parse(event.data).panels);
    window.scrollTo(window.scrollX, y);
    document.dispatchEvent(new CustomEvent('shotflow:panels'));
  });
  source.addEventListener('status', function (event) {
    var status = JSON.parse(event.data);
    if (!bar.classList.contains('is-error')) show('live · ' + status.text, []);
  });
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) show('live: the server has stopped (start shotflow watch again)', []);
    else show('live: reconnecting…', []);
  };
})();
