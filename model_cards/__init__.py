"""Model-card templates (installed as ``hf_alm.model_cards``), rendered by :func:`hf_alm.hub.render_model_card`.

``<family>.md`` (``beats``, ``clap_teminal``, ``tiny_edge``, ``one_peace``, ``generic``) are Jinja templates for
``huggingface_hub.ModelCard.from_template``; ``<!-- include: _part.md -->`` lines pull in the shared sections
(usage snippets, evaluation table, licence, citation). ``families.json`` holds each family's metadata: the
``model_type``s it covers, paper, licences of code and weights, pipeline tag, tags and BibTeX.
"""
