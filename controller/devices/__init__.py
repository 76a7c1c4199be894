"""A device's life at the centre: key store and CA, enrolment, licences, revocation and the CRL,
replacement. May import ``db``, ``fleet.commands`` (a revocation is also told to the device) and
``releases.keys`` (enrolment hands the device the release keys to trust)."""
