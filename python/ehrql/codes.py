from ehrfusion.codes import (  # noqa: F401
    BNFCode,
    BaseCode,
    CTV3Code,
    Codelist,
    CodelistError,
    DMDCode,
    ICD10Code,
    OPCS4Code,
    SNOMEDCTCode,
    codelist_from_csv,
)
