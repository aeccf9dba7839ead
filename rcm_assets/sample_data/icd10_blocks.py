"""ICD-10 chapters and the blocks that hold the sample's diagnosis codes (ICD10_CODES).

The replayed WHO API walks chapter → block → category → code, as the real one does. The sample
codes are ICD-10-CM (US) codes, so block ranges follow ICD-10-CM where it differs from WHO's
ICD-10 (e.g. `E08-E13`, `G89-G99`); chapter numbers are WHO's Roman numerals.
"""

from __future__ import annotations

# (chapter, first block start, last block end, title)
CHAPTERS: tuple[tuple[str, str, str, str], ...] = (
    ("I", "A00", "B99", "Certain infectious and parasitic diseases"),
    ("II", "C00", "D49", "Neoplasms"),
    (
        "III",
        "D50",
        "D89",
        "Diseases of the blood and blood-forming organs and certain disorders involving the "
        "immune mechanism",
    ),
    ("IV", "E00", "E89", "Endocrine, nutritional and metabolic diseases"),
    ("V", "F01", "F99", "Mental, behavioral and neurodevelopmental disorders"),
    ("VI", "G00", "G99", "Diseases of the nervous system"),
    ("VII", "H00", "H59", "Diseases of the eye and adnexa"),
    ("VIII", "H60", "H95", "Diseases of the ear and mastoid process"),
    ("IX", "I00", "I99", "Diseases of the circulatory system"),
    ("X", "J00", "J99", "Diseases of the respiratory system"),
    ("XI", "K00", "K95", "Diseases of the digestive system"),
    ("XII", "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    ("XIII", "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    ("XIV", "N00", "N99", "Diseases of the genitourinary system"),
    ("XV", "O00", "O9A", "Pregnancy, childbirth and the puerperium"),
    (
        "XVIII",
        "R00",
        "R99",
        "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified",
    ),
    ("XIX", "S00", "T88", "Injury, poisoning and certain other consequences of external causes"),
    ("XX", "V00", "Y99", "External causes of morbidity"),
    ("XXI", "Z00", "Z99", "Factors influencing health status and contact with health services"),
    ("XXII", "U00", "U85", "Codes for special purposes"),
)

# (block, title); a block `A00-A09` holds the categories A00 to A09.
BLOCKS: tuple[tuple[str, str], ...] = (
    ("A00-A09", "Intestinal infectious diseases"),
    ("A30-A49", "Other bacterial diseases"),
    ("B25-B34", "Other viral diseases"),
    ("B35-B49", "Mycoses"),
    ("C15-C26", "Malignant neoplasms of digestive organs"),
    ("C30-C39", "Malignant neoplasms of respiratory and intrathoracic organs"),
    ("C43-C44", "Melanoma and other malignant neoplasms of skin"),
    ("C50-C50", "Malignant neoplasms of breast"),
    ("C60-C63", "Malignant neoplasms of male genital organs"),
    ("D10-D36", "Benign neoplasms"),
    ("D50-D53", "Nutritional anemias"),
    ("D60-D64", "Aplastic and other anemias"),
    ("D65-D69", "Coagulation defects, purpura and other hemorrhagic conditions"),
    ("E00-E07", "Disorders of thyroid gland"),
    ("E08-E13", "Diabetes mellitus"),
    ("E50-E64", "Other nutritional deficiencies"),
    ("E65-E68", "Overweight, obesity and other hyperalimentation"),
    ("E70-E88", "Metabolic disorders"),
    ("F01-F09", "Mental disorders due to known physiological conditions"),
    ("F10-F19", "Mental and behavioral disorders due to psychoactive substance use"),
    ("F30-F39", "Mood [affective] disorders"),
    ("F40-F48", "Anxiety, dissociative, stress-related and somatoform disorders"),
    ("F90-F98", "Behavioral and emotional disorders with onset in childhood and adolescence"),
    ("G30-G32", "Other degenerative diseases of the nervous system"),
    ("G40-G47", "Episodic and paroxysmal disorders"),
    ("G50-G59", "Nerve, nerve root and plexus disorders"),
    ("G89-G99", "Other disorders of the nervous system"),
    ("H10-H11", "Disorders of conjunctiva"),
    ("H25-H28", "Disorders of lens"),
    ("H40-H42", "Glaucoma"),
    ("H49-H52", "Disorders of ocular muscles, binocular movement, accommodation and refraction"),
    ("H60-H62", "Diseases of external ear"),
    ("H65-H75", "Diseases of middle ear and mastoid"),
    ("I10-I16", "Hypertensive diseases"),
    ("I20-I25", "Ischemic heart diseases"),
    ("I30-I52", "Other forms of heart disease"),
    ("I60-I69", "Cerebrovascular diseases"),
    ("I70-I79", "Diseases of arteries, arterioles and capillaries"),
    ("I80-I89", "Diseases of veins, lymphatic vessels and lymph nodes"),
    ("J00-J06", "Acute upper respiratory infections"),
    ("J09-J18", "Influenza and pneumonia"),
    ("J20-J22", "Other acute lower respiratory infections"),
    ("J30-J39", "Other diseases of upper respiratory tract"),
    ("J40-J47", "Chronic lower respiratory diseases"),
    ("J96-J99", "Other diseases of the respiratory system"),
    ("K20-K31", "Diseases of esophagus, stomach and duodenum"),
    ("K35-K38", "Diseases of appendix"),
    ("K40-K46", "Hernia"),
    ("K50-K52", "Noninfective enteritis and colitis"),
    ("K55-K64", "Other diseases of intestines"),
    ("K70-K77", "Diseases of liver"),
    ("K80-K87", "Disorders of gallbladder, biliary tract and pancreas"),
    ("K90-K95", "Other diseases of the digestive system"),
    ("L00-L08", "Infections of the skin and subcutaneous tissue"),
    ("L20-L30", "Dermatitis and eczema"),
    ("L40-L45", "Papulosquamous disorders"),
    ("L55-L59", "Radiation-related disorders of the skin and subcutaneous tissue"),
    ("L60-L75", "Disorders of skin appendages"),
    ("L80-L99", "Other disorders of skin and subcutaneous tissue"),
    ("M05-M14", "Inflammatory polyarthropathies"),
    ("M15-M19", "Osteoarthritis"),
    ("M20-M25", "Other joint disorders"),
    ("M50-M54", "Other dorsopathies"),
    ("M60-M63", "Disorders of muscles"),
    ("M70-M79", "Other soft tissue disorders"),
    ("M80-M85", "Disorders of bone density and structure"),
    ("N17-N19", "Acute kidney failure and chronic kidney disease"),
    ("N20-N23", "Urolithiasis"),
    ("N30-N39", "Other diseases of the urinary system"),
    ("N40-N53", "Diseases of male genital organs"),
    ("N70-N77", "Inflammatory diseases of female pelvic organs"),
    ("N80-N98", "Noninflammatory disorders of female genital tract"),
    ("O20-O29", "Other maternal disorders predominantly related to pregnancy"),
    ("O80-O82", "Encounter for delivery"),
    ("R00-R09", "Symptoms and signs involving the circulatory and respiratory systems"),
    ("R10-R19", "Symptoms and signs involving the digestive system and abdomen"),
    ("R20-R23", "Symptoms and signs involving the skin and subcutaneous tissue"),
    ("R30-R39", "Symptoms and signs involving the genitourinary system"),
    ("R40-R46", "Symptoms and signs involving cognition, perception, emotional state and behavior"),
    ("R50-R69", "General symptoms and signs"),
    ("R70-R79", "Abnormal findings on examination of blood, without diagnosis"),
    ("S00-S09", "Injuries to the head"),
    ("S10-S19", "Injuries to the neck"),
    ("S30-S39", "Injuries to the abdomen, lower back, lumbar spine, pelvis and external genitals"),
    ("S50-S59", "Injuries to the elbow and forearm"),
    ("S60-S69", "Injuries to the wrist, hand and fingers"),
    ("S90-S99", "Injuries to the ankle and foot"),
    ("T66-T78", "Other and unspecified effects of external causes"),
    ("U00-U49", "Provisional assignment of new diseases of uncertain etiology or emergency use"),
    ("W00-W19", "Slipping, tripping, stumbling and falls"),
    ("Z00-Z13", "Persons encountering health services for examinations"),
    ("Z20-Z29", "Persons with potential health hazards related to communicable diseases"),
    ("Z30-Z39", "Persons encountering health services in circumstances related to reproduction"),
    ("Z40-Z53", "Encounters for other specific health care"),
    ("Z68-Z68", "Body mass index [BMI]"),
    ("Z69-Z76", "Persons encountering health services in other circumstances"),
    ("Z77-Z99", "Persons with potential health hazards related to personal and family history"),
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
    """The block holding a 3-character category (`E11` → `E08-E13`)."""
    for block, _ in BLOCKS:
        if _within(category, block):
            return block
    raise LookupError(f"no block in icd10_blocks.BLOCKS holds category {category}")
