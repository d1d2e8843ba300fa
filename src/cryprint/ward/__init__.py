"""The ward: a gallery of enrolled babies (SQLite) and the workflows over it — enrol a baby's
cries (:mod:`~cryprint.ward.enrol`), identify whose cry it is (:mod:`~cryprint.ward.identify`).
The ranking maths live in :mod:`cryprint.scoring.ranking`."""
