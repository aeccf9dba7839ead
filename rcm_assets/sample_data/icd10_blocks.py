"""WHO ICD-10 (2019) chapters and the blocks that hold the WHO replay's codes (WHO_ICD10_CODES).

The replayed WHO API walks chapter → block → category → code, as the real one does. It serves
WHO ICD-10 codes only, so chapters and blocks are WHO's own: ranges and titles follow WHO ICD-10
2019 where ICD-10-CM differs (WHO `E10-E14`, `E70-E90`, `I10-I15`, `Z80-Z99`; ICD-10-CM
`E08-E13`, `E70-E88`, `I10-I16`, `Z77-Z99`). ICD-10-CM-only codes reach the lakehouse through
a CMS ICD-10-CM order file instead, which carries no chapter/block structure.
"""

from __future__ import annotations

# (chapter, first category, last category, title)
CHAPTERS: tuple[tuple[str, str, str, str], ...] = (
    ("I", "A00", "B99", "Certain infectious and parasitic diseases"),
    ("II", "C00", "D48", "Neoplasms"),
    (
        "III",
        "D50",
        "D89",
        "Diseases of the blood and blood-forming organs and certain disorders involving the "
        "immune mechanism",
    ),
    ("IV", "E00", "E90", "Endocrine, nutritional and metabolic diseases"),
    ("V", "F00", "F99", "Mental and behavioural disorders"),
    ("VI", "G00", "G99", "Diseases of the nervous system"),
    ("VII", "H00", "H59", "Diseases of the eye and adnexa"),
    ("VIII", "H60", "H95", "Diseases of the ear and mastoid process"),
    ("IX", "I00", "I99", "Diseases of the circulatory system"),
    ("X", "J00", "J99", "Diseases of the respiratory system"),
    ("XI", "K00", "K93", "Diseases of the digestive system"),
    ("XII", "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    ("XIII", "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    ("XIV", "N00", "N99", "Diseases of the genitourinary system"),
    ("XV", "O00", "O99", "Pregnancy, childbirth and the puerperium"),
    ("XVI", "P00", "P96", "Certain conditions originating in the perinatal period"),
    (
        "XVII",
        "Q00",
        "Q99",
        "Congenital malformations, deformations and chromosomal abnormalities",
    ),
    (
        "XVIII",
        "R00",
        "R99",
        "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified",
    ),
    ("XIX", "S00", "T98", "Injury, poisoning and certain other consequences of external causes"),
    ("XX", "V01", "Y98", "External causes of morbidity and mortality"),
    ("XXI", "Z00", "Z99", "Factors influencing health status and contact with health services"),
    ("XXII", "U00", "U85", "Codes for special purposes"),
)

# (block, title); a block `A30-A49` holds the categories A30 to A49.
BLOCKS: tuple[tuple[str, str], ...] = (
    ("A30-A49", "Other bacterial diseases"),
    ("B25-B34", "Other viral diseases"),
    ("B35-B49", "Mycoses"),
    ("C15-C26", "Malignant neoplasms of digestive organs"),
    ("C60-C63", "Malignant neoplasms of male genital organs"),
    ("D10-D36", "Benign neoplasms"),
    ("D50-D53", "Nutritional anaemias"),
    ("D60-D64", "Aplastic and other anaemias"),
    ("D65-D69", "Coagulation defects, purpura and other haemorrhagic conditions"),
    ("E00-E07", "Disorders of thyroid gland"),
    ("E10-E14", "Diabetes mellitus"),
    ("E50-E64", "Other nutritional deficiencies"),
    ("E65-E68", "Obesity and other hyperalimentation"),
    ("E70-E90", "Metabolic disorders"),
    ("F30-F39", "Mood [affective] disorders"),
    ("F40-F48", "Neurotic, stress-related and somatoform disorders"),
    (
        "F90-F98",
        "Behavioural and emotional disorders with onset usually occurring in childhood and "
        "adolescence",
    ),
    ("G30-G32", "Other degenerative diseases of the nervous system"),
    ("H10-H13", "Disorders of conjunctiva"),
    ("H25-H28", "Disorders of lens"),
    ("H40-H42", "Glaucoma"),
    ("H49-H52", "Disorders of ocular muscles, binocular movement, accommodation and refraction"),
    ("I10-I15", "Hypertensive diseases"),
    ("I20-I25", "Ischaemic heart diseases"),
    ("I30-I52", "Other forms of heart disease"),
    ("I60-I69", "Cerebrovascular diseases"),
    ("I70-I79", "Diseases of arteries, arterioles and capillaries"),
    (
        "I80-I89",
        "Diseases of veins, lymphatic vessels and lymph nodes, not elsewhere classified",
    ),
    ("J00-J06", "Acute upper respiratory infections"),
    ("J09-J18", "Influenza and pneumonia"),
    ("J20-J22", "Other acute lower respiratory infections"),
    ("J30-J39", "Other diseases of upper respiratory tract"),
    ("J40-J47", "Chronic lower respiratory diseases"),
    ("K20-K31", "Diseases of oesophagus, stomach and duodenum"),
    ("K50-K52", "Noninfective enteritis and colitis"),
    ("K55-K64", "Other diseases of intestines"),
    ("K70-K77", "Diseases of liver"),
    ("K90-K93", "Other diseases of the digestive system"),
    ("L20-L30", "Dermatitis and eczema"),
    ("L40-L45", "Papulosquamous disorders"),
    ("L55-L59", "Radiation-related disorders of the skin and subcutaneous tissue"),
    ("L60-L75", "Disorders of skin appendages"),
    ("M05-M14", "Inflammatory polyarthropathies"),
    ("M15-M19", "Arthrosis"),
    ("M50-M54", "Other dorsopathies"),
    ("M70-M79", "Other soft tissue disorders"),
    ("M80-M85", "Disorders of bone density and structure"),
    ("N17-N19", "Renal failure"),
    ("N20-N23", "Urolithiasis"),
    ("N30-N39", "Other diseases of urinary system"),
    ("N70-N77", "Inflammatory diseases of female pelvic organs"),
    ("N80-N98", "Noninflammatory disorders of female genital tract"),
    ("R00-R09", "Symptoms and signs involving the circulatory and respiratory systems"),
    ("R20-R23", "Symptoms and signs involving the skin and subcutaneous tissue"),
    (
        "R40-R46",
        "Symptoms and signs involving cognition, perception, emotional state and behaviour",
    ),
    ("R50-R69", "General symptoms and signs"),
    ("R70-R79", "Abnormal findings on examination of blood, without diagnosis"),
    ("U00-U49", "Provisional assignment of new diseases of uncertain etiology or emergency use"),
    ("Z70-Z76", "Persons encountering health services in other circumstances"),
    (
        "Z80-Z99",
        "Persons with potential health hazards related to family and personal history and "
        "certain conditions influencing health status",
    ),
)


def _within(category: str, span: str) -> bool:
    first, last = span.split("-")
    return first <= category <= last


def chapter_of_block(block: str) -> str:
    """The chapter whose range holds the block's first category."""
    start = block.split("-")[0]
    for chapter, first, last, _ in CHAPTERS:
        if first <= start <= last:
            return chapter
    raise LookupError(f"no ICD-10 chapter holds block {block}")


def block_of(category: str) -> str:
    """The block holding a 3-character category (`E11` → `E10-E14`)."""
    for block, _ in BLOCKS:
        if _within(category, block):
            return block
    raise LookupError(f"no block in icd10_blocks.BLOCKS holds category {category}")
