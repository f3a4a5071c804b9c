"""rfqueue inside Flower: ``rfqueue flower`` runs Flower with a Fleet page of its own.

- :mod:`rfqueue.flower.command`: the ``rfqueue flower`` command (Celery's and Flower's
  own command line, run in-process);
- :mod:`rfqueue.flower.app`: Flower's application class with rfqueue's routes added,
  and the UI-module hook that links rfqueue's script into Flower's own pages;
- :mod:`rfqueue.flower.handlers`: the page, its JSON document and the pause/resume
  actions, each a subclass of a Flower handler (Flower's authentication);
- :mod:`rfqueue.flower.backend`, :mod:`rfqueue.flower.document`: what they read and do,
  with no Flower or Tornado in them.

Only the command imports Flower, and only when it runs: Flower is an optional extra
(``pip install 'rfqueue[flower]'``).

Layering: an application beside the exporter; it may import the table, the brokers,
:mod:`rfqueue.control` (the same pause and resume as the CLI) and the foundation; only
the CLI imports it.

What this relies on in Flower (the same in 2.0.0, 2.1.0 and 2.2.0, each tested; 1.2.0
has other routes and fails the tests):

- ``flower.command.flower``, reached as ``celery flower`` (the ``celery.commands`` entry
  point), builds its application by calling the name ``flower.command.Flower`` with
  ``(capp=..., options=..., **settings)``; the command points that name at
  :class:`~rfqueue.flower.app.FleetFlower` before it runs;
- ``flower.app.Flower(options, capp, ..., **tornado_settings)`` and its ``options``,
  ``capp`` attributes; the options ``basic_auth``, ``auth``, ``url_prefix`` and, where
  it exists (2.2), ``read_only``;
- ``flower.views.BaseHandler`` (``get_current_user`` does the basic-auth and OAuth
  checks, ``render`` passes ``url_prefix``, ``write_error`` answers 401) and
  ``flower.api.BaseApiHandler`` (401 without authentication unless
  ``FLOWER_UNAUTHENTICATED_API``; 2.2's XSRF rule comes with ``BaseHandler``);
- the template ``base.html`` (blocks ``container`` and ``extra_scripts``; ``title``
  from 2.1) rendering the navigation bar with ``{% module Template("navbar.html") %}``,
  and the named routes ``worker`` and ``tasks``;
- in the browser only (a missing piece leaves Flower's page as it was): the worker list
  table ``#workers-table`` with the status in its second column, and ``nav .navbar-nav``.

And in Tornado: ``Application.add_handlers`` puts a new host rule before the first one
(so Flower's catch-all 404 comes after rfqueue's routes); the ``ui_modules`` setting
replaces the ``Template`` module; the template loader reads an absolute path and
resolves its ``{% extends "base.html" %}`` in Flower's template directory.
"""
