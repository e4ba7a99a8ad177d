"""Study 1, personality alignment (Zhu et al., ICLR 2025): the PAPI task and the methods that solve it.

Data flows one way through the modules:

* ``data``           the IPIP-NEO-300 item key, the 120/180 split, the subjects' answers (re-exported here);
* ``prompts``        PAlign's prompt texts, and how an item becomes an engine prompt (the task definition);
* ``metrics``        the alignment metric (per-domain MAE, both conventions) and the endpoints beside it;
* ``reference``      predictors without a language model (the floor every method must beat);
* ``psychometrics``  keying evidence, reliability and consistency of the human answers;
* ``methods/``       one interface, many methods: prompting, PAS, DPO;
* ``experiment``     the sample, the resumable run of every method on every subject, the tables;
* ``cost``           optimisation time of PAS against DPO.
"""

from persona.papi.data import (
    DOMAIN_NAMES,
    DOMAINS,
    MISSING,
    N_ITEMS,
    OPTIONS,
    Convention,
    DataSettings,
    Item,
    PapiDataError,
    Split,
    Subject,
    agreement,
    agreement_to_keyed,
    answers_frame,
    items_by_number,
    keyed,
    load_item_key,
    load_split,
    load_subjects,
    load_subjects_table,
    option_text,
    shown_value,
    split_items,
    stored_to_agreement,
    subjects_from_frame,
)

__all__ = [
    "DOMAIN_NAMES", "DOMAINS", "MISSING", "N_ITEMS", "OPTIONS", "Convention", "DataSettings", "Item", "PapiDataError", "Split",
    "Subject", "agreement", "agreement_to_keyed", "answers_frame", "items_by_number", "keyed", "load_item_key",
    "load_split", "load_subjects", "load_subjects_table", "option_text", "shown_value", "split_items",
    "stored_to_agreement", "subjects_from_frame",
]
