# Sphinx configuration of the docs site (`make docs`; tools/docs.py assembles the pages into build/docs/src).
# Sphinx + myst-nb + sphinx-book-theme: wheels on PyPI (Quarto, which nbdev_docs needs, is not installable offline),
# renders notebooks as committed (no execution), and autodoc shows each module's API from the installed package.
project = 'imgcap2text'
author = 'imgcap2text contributors'
extensions = ['myst_nb', 'sphinx.ext.autodoc']
nb_execution_mode = 'off'            # pages show the outputs committed with the notebooks (make notebooks)
nb_output_stderr = 'remove'          # progress bars and log lines of the demo's executed drivers
myst_enable_extensions = ['colon_fence']   # no dollar math: no MathJax fetched from a CDN, the site works offline
myst_heading_anchors = 3
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
html_theme = 'sphinx_book_theme'
html_title = 'imgcap2text'
html_theme_options = {'show_toc_level': 2, 'home_page_in_toc': True}
html_static_path = []
exclude_patterns = ['_build']
suppress_warnings = ['mystnb.unknown_mime_type', 'misc.highlighting_failure']
html_context = {'default_mode': 'light'}   # the theme otherwise logs an error where it cannot read a stored mode
nb_render_markdown_format = 'myst'  # Markdown outputs (the drivers' tables) as MyST, which has tables
