"""``shotflow watch``: the live board — save the storyboard, see the frames change.

    editor saves storyboard.yaml ─► watchfiles ─► Workspace.round() ─► Update ─► SSE ─► every open board
                                                  │ load (the project stays warm:     replaces the panels
                                                  │ store, lock, last good board)     that changed, keeps
                                                  │ plan ─► render what changed       the scroll position
                                                  │ (render.render_loaded: same cache, same rules)
                                                  └ a bad edit: its errors, the last good frames kept
    board control ─► POST api/review ─► review.apply (writeback) ─► the file changes ─► a round

``rounds.py`` holds the project between rounds and knows nothing of HTTP; ``server.py``
is the Starlette app, the event hub, the watcher and the access rules; ``live.js`` the
page's side. Starlette, uvicorn and watchfiles are the ``live`` extra:
``pip install 'shotflow[live]'``.
"""
