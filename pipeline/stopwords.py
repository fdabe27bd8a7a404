"""Common English function words: the word sets of stage two's checks and of grounded decoding's
quotable spans leave them out.

A module of its own because both sides read it: ``pipeline.grounded`` (stage one) and the checks
of ``pipeline.checks``, which import grounded decoding's constants in turn.
"""

_STOPWORDS_WORDS = """the a an and or but of to in on at for with by from as is are was were be been being it its this that these
    those he she they his her their them him we you i my your our not no so than then there here which who what when
    how why if because while into about over under after before can could would should may might will do does did
    has have had very more most also just only even such"""
STOPWORDS = frozenset(_STOPWORDS_WORDS.split())
