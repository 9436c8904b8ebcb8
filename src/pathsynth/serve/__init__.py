"""The web app: a server-rendered catalog browser, experiments and runs, and the blinded visual
Turing test, over one workspace (``pathsynth serve``).

``app`` holds the settings, the application factory and the server; ``routes`` the operator's
pages; ``turing_pages`` the raters' and the test's pages; ``security`` sign-in, tokens, CSRF and
headers; ``params`` the ids and numbers a URL or form may hold; ``thumbnails`` the on-disk
thumbnail cache; ``charts`` the inline SVG bar charts.
"""
