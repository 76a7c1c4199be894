"""The forms clerks fill, one per category, as versioned data (S-01, S-02), and their checks.

Sans-I/O: definitions and code lists are data; validation takes values and returns problems.
The device's console and the controller's ingest use the same definitions.
"""

from muster.forms.codelists import CODE_LISTS
from muster.forms.definitions import (
    CURRENT_VERSION,
    FORMS,
    SECTIONS,
    FieldDef,
    FormDefinition,
    current_form,
    form_for,
)
from muster.forms.validation import (
    PersonFacts,
    Problem,
    Validated,
    person_problems,
    validate_fields,
)

__all__ = [
    "CODE_LISTS",
    "CURRENT_VERSION",
    "FORMS",
    "SECTIONS",
    "FieldDef",
    "FormDefinition",
    "PersonFacts",
    "Problem",
    "Validated",
    "current_form",
    "form_for",
    "person_problems",
    "validate_fields",
]
