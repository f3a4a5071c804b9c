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
"""
