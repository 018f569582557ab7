/*
 * The lab table and unit conversion: which labs radfuse knows (ids, LOINC
 * codes, names), their canonical units, and a UCUM subset that converts what
 * sources write into them. Conversions are exact unit algebra (prefixes,
 * dL = 0.1 L, 10^9/L = 10^3/uL, % = 0.01, mm[Hg] = 133.322 Pa, the affine
 * Celsius/Fahrenheit scales) plus mass <-> amount through a molar mass and
 * equivalents <-> amount through a charge; every factor is checked against
 * the UCUM reference implementation in tests (tests/data/make_labs_cases.py).
 * A unit not listed here is unknown: radfuse keeps it and flags it, never
 * guesses.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "text/labs_internal.h"

/* ---- units ---------------------------------------------------------------- */

typedef enum dim {
    D_MASS,   /* mass concentration, base g/L */
    D_AMOUNT, /* substance concentration, base mol/L */
    D_EQ,     /* equivalents, base eq/L */
    D_COUNT,  /* number concentration, base /L */
    D_ONE,    /* dimensionless, base 1 (%, ratio, INR) */
    D_CAT,    /* catalytic activity concentration, base U/L (umol/min per L) */
    D_PRESS,  /* pressure, base Pa */
    D_TEMP,   /* temperature, base K (affine) */
    D_RATE,   /* events per time, base /min */
    D_PH,     /* [pH] */
} dim;

typedef enum basis { B_NONE, B_FEU, B_DDU } basis; /* D-dimer: fibrinogen-equivalent or D-dimer units */

typedef struct unit_def {
    const char *s;
    dim d;
    double f;   /* base = value * f + off */
    double off;
    bool ci;    /* also matched without regard to case (when no spelling of another unit collides) */
} unit_def;

/* 5/9 K per degree Fahrenheit; 459.67 degF below 0 K = 255.372... K at 0 degF */
#define FAHR_F (5.0 / 9.0)
#define FAHR_OFF (459.67 * 5.0 / 9.0)

static const unit_def units[] = {
    /* mass concentration (UCUM: g/L etc.; "g/L" and "G/L" differ by case) */
    {"g/L", D_MASS, 1, 0, false},          {"g/l", D_MASS, 1, 0, false},
    {"g/dL", D_MASS, 10, 0, true},         {"mg/mL", D_MASS, 1, 0, true},
    {"mg/dL", D_MASS, 1e-2, 0, true},      {"mg/L", D_MASS, 1e-3, 0, true},
    {"ug/mL", D_MASS, 1e-3, 0, true},      {"mcg/mL", D_MASS, 1e-3, 0, true},
    {"ug/dL", D_MASS, 1e-5, 0, true},      {"mcg/dL", D_MASS, 1e-5, 0, true},
    {"ug/L", D_MASS, 1e-6, 0, true},       {"mcg/L", D_MASS, 1e-6, 0, true},
    {"ng/mL", D_MASS, 1e-6, 0, true},      {"ng/dL", D_MASS, 1e-5 * 1e-3, 0, true},
    {"ng/L", D_MASS, 1e-9, 0, true},       {"pg/mL", D_MASS, 1e-9, 0, true},
    /* substance concentration */
    {"mol/L", D_AMOUNT, 1, 0, true},       {"mmol/L", D_AMOUNT, 1e-3, 0, true},
    {"umol/L", D_AMOUNT, 1e-6, 0, true},   {"nmol/L", D_AMOUNT, 1e-9, 0, true},
    {"pmol/L", D_AMOUNT, 1e-12, 0, true},
    /* equivalents (UCUM eq, meq) */
    {"eq/L", D_EQ, 1, 0, true},            {"meq/L", D_EQ, 1e-3, 0, true},
    /* number concentration: 10^9/L = 10^3/uL = K/uL = G/L = /nL */
    {"10*9/L", D_COUNT, 1e9, 0, true},     {"10^9/L", D_COUNT, 1e9, 0, true},
    {"x10*9/L", D_COUNT, 1e9, 0, true},    {"x10^9/L", D_COUNT, 1e9, 0, true},
    {"\xc3\x97" "10^9/L", D_COUNT, 1e9, 0, true}, {"10E9/L", D_COUNT, 1e9, 0, true},
    {"x10E9/L", D_COUNT, 1e9, 0, true},    {"G/L", D_COUNT, 1e9, 0, false},
    {"G/l", D_COUNT, 1e9, 0, false},       {"Gpt/L", D_COUNT, 1e9, 0, true},
    {"/nL", D_COUNT, 1e9, 0, true},        {"10*3/uL", D_COUNT, 1e9, 0, true},
    {"10^3/uL", D_COUNT, 1e9, 0, true},    {"x10*3/uL", D_COUNT, 1e9, 0, true},
    {"x10^3/uL", D_COUNT, 1e9, 0, true},   {"\xc3\x97" "10^3/uL", D_COUNT, 1e9, 0, true},
    {"10E3/uL", D_COUNT, 1e9, 0, true},    {"x10E3/uL", D_COUNT, 1e9, 0, true},
    {"10*3/mm3", D_COUNT, 1e9, 0, true},   {"10^3/mm3", D_COUNT, 1e9, 0, true},
    {"K/uL", D_COUNT, 1e9, 0, true},       {"K/mm3", D_COUNT, 1e9, 0, true},
    {"thou/uL", D_COUNT, 1e9, 0, true},    {"/uL", D_COUNT, 1e6, 0, true},
    {"/mm3", D_COUNT, 1e6, 0, true},       {"cells/uL", D_COUNT, 1e6, 0, true},
    {"cells/mm3", D_COUNT, 1e6, 0, true},  {"/L", D_COUNT, 1, 0, true},
    {"10*12/L", D_COUNT, 1e12, 0, true},   {"10^12/L", D_COUNT, 1e12, 0, true},
    {"x10^12/L", D_COUNT, 1e12, 0, true},  {"10*6/uL", D_COUNT, 1e12, 0, true},
    {"10^6/uL", D_COUNT, 1e12, 0, true},   {"x10^6/uL", D_COUNT, 1e12, 0, true},
    {"M/uL", D_COUNT, 1e12, 0, false},     {"T/L", D_COUNT, 1e12, 0, false},
    /* dimensionless */
    {"%", D_ONE, 1e-2, 0, false},          {"1", D_ONE, 1, 0, false},
    {"L/L", D_ONE, 1, 0, true},            {"ratio", D_ONE, 1, 0, true},
    /* catalytic activity: U = umol/min, kat = mol/s, so ukat = 60 U */
    {"U/L", D_CAT, 1, 0, true},            {"IU/L", D_CAT, 1, 0, true},
    {"[IU]/L", D_CAT, 1, 0, true},         {"ukat/L", D_CAT, 60, 0, true},
    {"nkat/L", D_CAT, 0.06, 0, true},
    /* pressure: UCUM m[Hg] = 133.3220 kPa */
    {"mm[Hg]", D_PRESS, 133.322, 0, true}, {"mmHg", D_PRESS, 133.322, 0, true},
    {"mm Hg", D_PRESS, 133.322, 0, true},  {"kPa", D_PRESS, 1000, 0, true},
    /* temperature */
    {"Cel", D_TEMP, 1, 273.15, true},      {"\xc2\xb0" "C", D_TEMP, 1, 273.15, true},
    {"\xe2\x84\x83", D_TEMP, 1, 273.15, false}, {"degC", D_TEMP, 1, 273.15, true},
    {"deg C", D_TEMP, 1, 273.15, true},    {"C", D_TEMP, 1, 273.15, false},
    {"[degF]", D_TEMP, FAHR_F, FAHR_OFF, true}, {"\xc2\xb0" "F", D_TEMP, FAHR_F, FAHR_OFF, true},
    {"\xe2\x84\x89", D_TEMP, FAHR_F, FAHR_OFF, false}, {"degF", D_TEMP, FAHR_F, FAHR_OFF, true},
    {"deg F", D_TEMP, FAHR_F, FAHR_OFF, true}, {"F", D_TEMP, FAHR_F, FAHR_OFF, false},
    /* rates */
    {"/min", D_RATE, 1, 0, true},          {"1/min", D_RATE, 1, 0, true},
    {"min-1", D_RATE, 1, 0, true},         {"bpm", D_RATE, 1, 0, true},
    {"beats/min", D_RATE, 1, 0, true},     {"breaths/min", D_RATE, 1, 0, true},
    /* pH */
    {"[pH]", D_PH, 1, 0, true},            {"pH", D_PH, 1, 0, true},
};

typedef struct unit_info {
    dim d;
    double f, off;
    basis b;
} unit_info;

static bool ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
    return *a == *b;
}

/* "FEU", "DDU" (any case) at the end of s[0..*n), alone, in braces or
 * parentheses or after a space; removed from *n. */
static basis strip_basis(const char *s, size_t *n)
{
    size_t k = *n;
    while (k && s[k - 1] == ' ')
        k--;
    bool wrapped = k && (s[k - 1] == '}' || s[k - 1] == ')');
    size_t end = wrapped ? k - 1 : k;
    if (end < 3)
        return B_NONE;
    basis b = B_NONE;
    if (strncasecmp(s + end - 3, "feu", 3) == 0)
        b = B_FEU;
    else if (strncasecmp(s + end - 3, "ddu", 3) == 0)
        b = B_DDU;
    if (b == B_NONE)
        return B_NONE;
    size_t start = end - 3;
    if (wrapped) {
        char open = s[k - 1] == '}' ? '{' : '(';
        if (start == 0 || s[start - 1] != open)
            return B_NONE;
        start--;
    } else if (start == 0 || s[start - 1] != ' ') {
        return B_NONE; /* "mgFEU" is not a spelling anyone uses */
    }
    while (start && s[start - 1] == ' ')
        start--;
    *n = start;
    return b;
}

/*
 * Parses a unit as written into its dimension and factor. UCUM annotations
 * ("{cells}/uL", "{INR}") are dropped, as UCUM defines them to be; micro
 * signs become 'u'. Returns false for a unit not in the table.
 */
static bool unit_parse(const char *raw, unit_info *u)
{
    char buf[64];
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)raw;
    while (*s == ' ' || *s == '\t')
        s++;
    for (; *s; s++) {
        if (n + 4 >= sizeof buf)
            return false;
        if ((s[0] == 0xc2 && s[1] == 0xb5) || (s[0] == 0xce && s[1] == 0xbc)) { /* µ and Greek mu */
            buf[n++] = 'u';
            s++;
        } else {
            buf[n++] = (char)*s;
        }
    }
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    u->b = strip_basis(buf, &n);
    /* drop annotations */
    char clean[64];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '{') {
            const char *close = memchr(buf + i, '}', n - i);
            if (!close)
                return false;
            i = (size_t)(close - buf);
        } else if (buf[i] == '}') {
            return false;
        } else {
            clean[m++] = buf[i];
        }
    }
    while (m && clean[m - 1] == ' ')
        m--;
    clean[m] = 0;
    if (m == 0) { /* only an annotation: a dimensionless count such as {INR} or {ratio} */
        u->d = D_ONE, u->f = 1, u->off = 0;
        return true;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(units[i].s, clean) == 0) {
            u->d = units[i].d, u->f = units[i].f, u->off = units[i].off;
            return true;
        }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (units[i].ci && ieq(units[i].s, clean)) {
            u->d = units[i].d, u->f = units[i].f, u->off = units[i].off;
            return true;
        }
    return false;
}

bool labs_unit_known(const char *unit)
{
    unit_info u;
    return unit && *unit && unit_parse(unit, &u);
}

/* ---- the lab table ---------------------------------------------------------- */

/* Ids are these, in this order, for good: new labs go at the end. */
enum {
    L_GLUCOSE, L_CREATININE, L_UREA, L_SODIUM, L_POTASSIUM, L_CHLORIDE, L_BICARBONATE, L_CALCIUM,
    L_HEMOGLOBIN, L_HEMATOCRIT, L_WBC, L_NEUT_ABS, L_NEUT_PCT, L_LYMPH_ABS, L_LYMPH_PCT, L_PLATELETS,
    L_CRP, L_PROCALCITONIN, L_DDIMER_FEU, L_DDIMER_DDU, L_DDIMER, L_FERRITIN, L_LDH, L_TROPONIN_I,
    L_TROPONIN_T, L_BNP, L_NTPROBNP, L_LACTATE, L_ALBUMIN, L_BILIRUBIN, L_ALT, L_AST, L_INR, L_PO2,
    L_PCO2, L_PH, L_SPO2, L_TEMPERATURE, L_HEART_RATE, L_RESP_RATE, L_SBP, L_DBP,
    L_COUNT
};

typedef struct lab_row {
    rf_lab_def def;
    double molar_mass; /* g/mol, for mass <-> amount; 0: none */
    int charge;        /* for meq/L <-> mmol/L; 0: equivalents refused */
    basis b;           /* D-dimer's reporting basis */
    int twin;          /* the same analyte as % or as a count (chosen by unit when found by name), or -1 */
    bool unitless;     /* its unit may be absent (pH, INR) */
    bool signed_scale; /* can be negative or has an arbitrary zero (temperature, pH) */
} lab_row;

/*
 * Molar masses from IUPAC standard atomic weights (C 12.011, H 1.008,
 * N 14.007, O 15.999, Na 22.990, K 39.098, Cl 35.45, Ca 40.078):
 * glucose C6H12O6 180.156 (18.016 mg/dL per mmol/L), creatinine C4H7N3O
 * 113.12 (88.40 umol/L per mg/dL; textbooks print 88.4), urea CH4N2O 60.056,
 * urea nitrogen N2 28.014 (BUN 1 mg/dL = 0.357 mmol/L urea), bilirubin
 * C33H36N4O6 584.673 (17.10 umol/L per mg/dL), lactic acid C3H6O3 90.078
 * (9.01 mg/dL per mmol/L), hemoglobin per globin chain 16114.5 (a tetramer of
 * 64458 g/mol; g/dL x 0.6206 = mmol/L as Dutch labs report), BNP-32
 * 3464 g/mol and NT-proBNP 8457 g/mol (the manufacturers' pmol/L factors).
 *
 * pop_low/pop_high: rounded typical adult reference intervals, used only for
 * the z-like value of a record that gives no range of its own (z_source says
 * which): Kratz et al., "Laboratory reference values", N Engl J Med
 * 2004;351:1548-63, for chemistry, blood gases and blood counts; the
 * manufacturers' 99th percentiles for high-sensitivity troponins (I: Abbott
 * Architect 26 ng/L; T: Roche Elecsys 14 ng/L); NT-proBNP < 125 ng/L and
 * BNP < 100 ng/L (ESC heart failure guidelines' rule-out); vital signs as
 * usually taught (SpO2 95-100%, 36.1-37.2 Cel, 60-100 and 12-20 /min).
 * 0/0 means none (D-dimer of unstated basis).
 */
static const lab_row lab_rows[L_COUNT] = {
    [L_GLUCOSE] = {{"glucose", "Glucose", "mmol/L", 3.9, 5.6}, 180.156, 0, B_NONE, -1, false, false},
    [L_CREATININE] = {{"creatinine", "Creatinine", "umol/L", 53, 106}, 113.12, 0, B_NONE, -1, false, false},
    [L_UREA] = {{"urea", "Urea (BUN as urea)", "mmol/L", 2.5, 7.1}, 60.056, 0, B_NONE, -1, false, false},
    [L_SODIUM] = {{"sodium", "Sodium", "mmol/L", 135, 145}, 22.990, 1, B_NONE, -1, false, false},
    [L_POTASSIUM] = {{"potassium", "Potassium", "mmol/L", 3.5, 5.0}, 39.098, 1, B_NONE, -1, false, false},
    [L_CHLORIDE] = {{"chloride", "Chloride", "mmol/L", 98, 107}, 35.45, 1, B_NONE, -1, false, false},
    /* total CO2 is reported for bicarbonate by most chemistry panels; one lab for both */
    [L_BICARBONATE] = {{"bicarbonate", "Bicarbonate / total CO2", "mmol/L", 22, 29}, 61.016, 1, B_NONE, -1, false,
                       false},
    [L_CALCIUM] = {{"calcium", "Calcium (total)", "mmol/L", 2.15, 2.55}, 40.078, 2, B_NONE, -1, false, false},
    [L_HEMOGLOBIN] = {{"hemoglobin", "Hemoglobin", "g/L", 120, 175}, 16114.5, 0, B_NONE, -1, false, false},
    [L_HEMATOCRIT] = {{"hematocrit", "Hematocrit", "%", 36, 53}, 0, 0, B_NONE, -1, false, false},
    [L_WBC] = {{"wbc", "Leukocytes (WBC)", "10*9/L", 4.5, 11.0}, 0, 0, B_NONE, -1, false, false},
    [L_NEUT_ABS] = {{"neutrophils", "Neutrophils (absolute)", "10*9/L", 1.8, 7.7}, 0, 0, B_NONE, L_NEUT_PCT, false,
                    false},
    [L_NEUT_PCT] = {{"neutrophils_pct", "Neutrophils / 100 leukocytes", "%", 40, 70}, 0, 0, B_NONE, L_NEUT_ABS,
                    false, false},
    [L_LYMPH_ABS] = {{"lymphocytes", "Lymphocytes (absolute)", "10*9/L", 1.0, 4.8}, 0, 0, B_NONE, L_LYMPH_PCT,
                     false, false},
    [L_LYMPH_PCT] = {{"lymphocytes_pct", "Lymphocytes / 100 leukocytes", "%", 20, 40}, 0, 0, B_NONE, L_LYMPH_ABS,
                     false, false},
    [L_PLATELETS] = {{"platelets", "Platelets", "10*9/L", 150, 400}, 0, 0, B_NONE, -1, false, false},
    [L_CRP] = {{"crp", "C-reactive protein", "mg/L", 0, 5}, 0, 0, B_NONE, -1, false, false},
    [L_PROCALCITONIN] = {{"procalcitonin", "Procalcitonin", "ug/L", 0, 0.1}, 0, 0, B_NONE, -1, false, false},
    [L_DDIMER_FEU] = {{"d_dimer_feu", "D-dimer (FEU)", "mg/L{FEU}", 0, 0.5}, 0, 0, B_FEU, -1, false, false},
    [L_DDIMER_DDU] = {{"d_dimer_ddu", "D-dimer (DDU)", "mg/L{DDU}", 0, 0.25}, 0, 0, B_DDU, -1, false, false},
    [L_DDIMER] = {{"d_dimer", "D-dimer (basis not stated)", "mg/L", 0, 0}, 0, 0, B_NONE, -1, false, false},
    [L_FERRITIN] = {{"ferritin", "Ferritin", "ug/L", 15, 300}, 0, 0, B_NONE, -1, false, false},
    [L_LDH] = {{"ldh", "Lactate dehydrogenase", "U/L", 140, 280}, 0, 0, B_NONE, -1, false, false},
    [L_TROPONIN_I] = {{"troponin_i", "Troponin I (cardiac)", "ng/L", 0, 26}, 0, 0, B_NONE, -1, false, false},
    [L_TROPONIN_T] = {{"troponin_t", "Troponin T (cardiac)", "ng/L", 0, 14}, 0, 0, B_NONE, -1, false, false},
    [L_BNP] = {{"bnp", "BNP", "ng/L", 0, 100}, 3464, 0, B_NONE, -1, false, false},
    [L_NTPROBNP] = {{"nt_probnp", "NT-proBNP", "ng/L", 0, 125}, 8457, 0, B_NONE, -1, false, false},
    [L_LACTATE] = {{"lactate", "Lactate", "mmol/L", 0.5, 2.2}, 90.078, 0, B_NONE, -1, false, false},
    [L_ALBUMIN] = {{"albumin", "Albumin", "g/L", 35, 50}, 0, 0, B_NONE, -1, false, false},
    [L_BILIRUBIN] = {{"bilirubin", "Bilirubin (total)", "umol/L", 5, 21}, 584.673, 0, B_NONE, -1, false, false},
    [L_ALT] = {{"alt", "Alanine aminotransferase", "U/L", 7, 55}, 0, 0, B_NONE, -1, false, false},
    [L_AST] = {{"ast", "Aspartate aminotransferase", "U/L", 8, 48}, 0, 0, B_NONE, -1, false, false},
    [L_INR] = {{"inr", "INR", "{INR}", 0.8, 1.2}, 0, 0, B_NONE, -1, true, false},
    [L_PO2] = {{"po2", "pO2", "mm[Hg]", 80, 100}, 0, 0, B_NONE, -1, false, false},
    [L_PCO2] = {{"pco2", "pCO2", "mm[Hg]", 35, 45}, 0, 0, B_NONE, -1, false, false},
    [L_PH] = {{"ph", "pH", "[pH]", 7.35, 7.45}, 0, 0, B_NONE, -1, true, true},
    [L_SPO2] = {{"spo2", "Oxygen saturation", "%", 95, 100}, 0, 0, B_NONE, -1, false, false},
    [L_TEMPERATURE] = {{"temperature", "Body temperature", "Cel", 36.1, 37.2}, 0, 0, B_NONE, -1, false, true},
    [L_HEART_RATE] = {{"heart_rate", "Heart rate", "/min", 60, 100}, 0, 0, B_NONE, -1, false, false},
    [L_RESP_RATE] = {{"resp_rate", "Respiratory rate", "/min", 12, 20}, 0, 0, B_NONE, -1, false, false},
    [L_SBP] = {{"sbp", "Systolic blood pressure", "mm[Hg]", 90, 120}, 0, 0, B_NONE, -1, false, false},
    [L_DBP] = {{"dbp", "Diastolic blood pressure", "mm[Hg]", 60, 80}, 0, 0, B_NONE, -1, false, false},
};

#define MM_BUN 28.014 /* urea nitrogen, N2 */

typedef struct loinc_row {
    const char *code;
    int lab;
    double molar_mass; /* the code's basis when it differs from the lab's, else 0 */
} loinc_row;

/* LOINC codes (long common names in the comments) per lab. */
static const loinc_row loincs[] = {
    {"2345-7", L_GLUCOSE, 0},  /* Glucose [Mass/volume] in Serum or Plasma */
    {"2339-0", L_GLUCOSE, 0},  /* Glucose [Mass/volume] in Blood */
    {"14749-6", L_GLUCOSE, 0}, /* Glucose [Moles/volume] in Serum or Plasma */
    {"15074-8", L_GLUCOSE, 0}, /* Glucose [Moles/volume] in Blood */
    {"41653-7", L_GLUCOSE, 0}, /* Glucose [Mass/volume] in Capillary blood by Glucometer */
    {"2160-0", L_CREATININE, 0},  /* Creatinine [Mass/volume] in Serum or Plasma */
    {"38483-4", L_CREATININE, 0}, /* Creatinine [Mass/volume] in Blood */
    {"14682-9", L_CREATININE, 0}, /* Creatinine [Moles/volume] in Serum or Plasma */
    {"3094-0", L_UREA, MM_BUN},   /* Urea nitrogen [Mass/volume] in Serum or Plasma */
    {"6299-2", L_UREA, MM_BUN},   /* Urea nitrogen [Mass/volume] in Blood */
    {"14937-7", L_UREA, MM_BUN},  /* Urea nitrogen [Moles/volume] in Serum or Plasma */
    {"3091-6", L_UREA, 0},        /* Urea [Mass/volume] in Serum or Plasma */
    {"22664-7", L_UREA, 0},       /* Urea [Moles/volume] in Serum or Plasma */
    {"2951-2", L_SODIUM, 0},      /* Sodium [Moles/volume] in Serum or Plasma */
    {"2947-0", L_SODIUM, 0},      /* Sodium [Moles/volume] in Blood */
    {"2823-3", L_POTASSIUM, 0},   /* Potassium [Moles/volume] in Serum or Plasma */
    {"6298-4", L_POTASSIUM, 0},   /* Potassium [Moles/volume] in Blood */
    {"2075-0", L_CHLORIDE, 0},    /* Chloride [Moles/volume] in Serum or Plasma */
    {"2069-3", L_CHLORIDE, 0},    /* Chloride [Moles/volume] in Blood */
    {"1963-8", L_BICARBONATE, 0}, /* Bicarbonate [Moles/volume] in Serum or Plasma */
    {"1960-4", L_BICARBONATE, 0}, /* Bicarbonate [Moles/volume] in Arterial blood */
    {"1959-6", L_BICARBONATE, 0}, /* Bicarbonate [Moles/volume] in Blood */
    {"2028-9", L_BICARBONATE, 0}, /* Carbon dioxide, total [Moles/volume] in Serum or Plasma */
    {"20565-8", L_BICARBONATE, 0}, /* Carbon dioxide, total [Moles/volume] in Blood */
    {"17861-6", L_CALCIUM, 0},    /* Calcium [Mass/volume] in Serum or Plasma */
    {"49765-1", L_CALCIUM, 0},    /* Calcium [Mass/volume] in Blood */
    {"2000-8", L_CALCIUM, 0},     /* Calcium [Moles/volume] in Serum or Plasma */
    {"718-7", L_HEMOGLOBIN, 0},   /* Hemoglobin [Mass/volume] in Blood */
    {"20509-6", L_HEMOGLOBIN, 0}, /* Hemoglobin [Mass/volume] in Blood by calculation */
    {"30313-1", L_HEMOGLOBIN, 0}, /* Hemoglobin [Mass/volume] in Arterial blood */
    {"59260-0", L_HEMOGLOBIN, 0}, /* Hemoglobin [Moles/volume] in Blood */
    {"4544-3", L_HEMATOCRIT, 0},  /* Hematocrit [Volume Fraction] of Blood by Automated count */
    {"20570-8", L_HEMATOCRIT, 0}, /* Hematocrit [Volume Fraction] of Blood */
    {"4545-0", L_HEMATOCRIT, 0},  /* Hematocrit [Volume Fraction] of Blood by Centrifugation */
    {"31100-1", L_HEMATOCRIT, 0}, /* Hematocrit [Volume Fraction] of Blood by Impedance */
    {"6690-2", L_WBC, 0},         /* Leukocytes [#/volume] in Blood by Automated count */
    {"26464-8", L_WBC, 0},        /* Leukocytes [#/volume] in Blood */
    {"804-5", L_WBC, 0},          /* Leukocytes [#/volume] in Blood by Manual count */
    {"33256-9", L_WBC, 0},        /* Leukocytes [#/volume] corrected for nucleated erythrocytes, automated */
    {"751-8", L_NEUT_ABS, 0},     /* Neutrophils [#/volume] in Blood by Automated count */
    {"26499-4", L_NEUT_ABS, 0},   /* Neutrophils [#/volume] in Blood */
    {"753-4", L_NEUT_ABS, 0},     /* Neutrophils [#/volume] in Blood by Manual count */
    {"770-8", L_NEUT_PCT, 0},     /* Neutrophils/100 leukocytes in Blood by Automated count */
    {"26511-6", L_NEUT_PCT, 0},   /* Neutrophils/100 leukocytes in Blood */
    {"769-0", L_NEUT_PCT, 0},     /* Neutrophils/100 leukocytes in Blood by Manual count */
    {"731-0", L_LYMPH_ABS, 0},    /* Lymphocytes [#/volume] in Blood by Automated count */
    {"26474-7", L_LYMPH_ABS, 0},  /* Lymphocytes [#/volume] in Blood */
    {"732-8", L_LYMPH_ABS, 0},    /* Lymphocytes [#/volume] in Blood by Manual count */
    {"736-9", L_LYMPH_PCT, 0},    /* Lymphocytes/100 leukocytes in Blood by Automated count */
    {"26478-8", L_LYMPH_PCT, 0},  /* Lymphocytes/100 leukocytes in Blood */
    {"737-7", L_LYMPH_PCT, 0},    /* Lymphocytes/100 leukocytes in Blood by Manual count */
    {"777-3", L_PLATELETS, 0},    /* Platelets [#/volume] in Blood by Automated count */
    {"26515-7", L_PLATELETS, 0},  /* Platelets [#/volume] in Blood */
    {"778-1", L_PLATELETS, 0},    /* Platelets [#/volume] in Blood by Manual count */
    {"1988-5", L_CRP, 0},         /* C reactive protein [Mass/volume] in Serum or Plasma */
    {"30522-7", L_CRP, 0},        /* C reactive protein [Mass/volume] in Serum or Plasma by High sensitivity method */
    {"33959-8", L_PROCALCITONIN, 0}, /* Procalcitonin [Mass/volume] in Serum or Plasma */
    {"75241-0", L_PROCALCITONIN, 0}, /* Procalcitonin [Mass/volume] in Serum or Plasma by Immunoassay */
    {"48065-7", L_DDIMER_FEU, 0}, /* Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma */
    {"48066-5", L_DDIMER_DDU, 0}, /* Fibrin D-dimer DDU [Mass/volume] in Platelet poor plasma */
    {"2276-4", L_FERRITIN, 0},    /* Ferritin [Mass/volume] in Serum or Plasma */
    {"14804-9", L_LDH, 0},        /* Lactate dehydrogenase [Enzymatic activity/volume], lactate to pyruvate */
    {"2532-0", L_LDH, 0},         /* Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma */
    {"14805-6", L_LDH, 0},        /* Lactate dehydrogenase [Enzymatic activity/volume], pyruvate to lactate */
    {"10839-9", L_TROPONIN_I, 0}, /* Troponin I.cardiac [Mass/volume] in Serum or Plasma */
    {"42757-5", L_TROPONIN_I, 0}, /* Troponin I.cardiac [Mass/volume] in Blood */
    {"89579-7", L_TROPONIN_I, 0}, /* Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method */
    {"6598-7", L_TROPONIN_T, 0},  /* Troponin T.cardiac [Mass/volume] in Serum or Plasma */
    {"67151-1", L_TROPONIN_T, 0}, /* Troponin T.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method */
    {"30934-4", L_BNP, 0},        /* Natriuretic peptide B [Mass/volume] in Serum or Plasma */
    {"42637-9", L_BNP, 0},        /* Natriuretic peptide B [Mass/volume] in Blood */
    {"33762-6", L_NTPROBNP, 0},   /* Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma */
    {"2524-7", L_LACTATE, 0},     /* Lactate [Moles/volume] in Serum or Plasma */
    {"32693-4", L_LACTATE, 0},    /* Lactate [Moles/volume] in Blood */
    {"2518-9", L_LACTATE, 0},     /* Lactate [Moles/volume] in Arterial blood */
    {"1751-7", L_ALBUMIN, 0},     /* Albumin [Mass/volume] in Serum or Plasma */
    {"61151-7", L_ALBUMIN, 0},    /* Albumin [Mass/volume] in Serum or Plasma by Bromocresol green (BCG) dye binding */
    {"1975-2", L_BILIRUBIN, 0},   /* Bilirubin.total [Mass/volume] in Serum or Plasma */
    {"42719-5", L_BILIRUBIN, 0},  /* Bilirubin.total [Mass/volume] in Blood */
    {"14631-6", L_BILIRUBIN, 0},  /* Bilirubin.total [Moles/volume] in Serum or Plasma */
    {"1742-6", L_ALT, 0},         /* Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma */
    {"1743-4", L_ALT, 0},         /* ... by With P-5'-P */
    {"1920-8", L_AST, 0},         /* Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma */
    {"30239-8", L_AST, 0},        /* ... by With P-5'-P */
    {"6301-6", L_INR, 0},         /* INR in Platelet poor plasma by Coagulation assay */
    {"34714-6", L_INR, 0},        /* INR in Blood by Coagulation assay */
    {"46418-0", L_INR, 0},        /* INR in Capillary blood by Coagulation assay */
    {"2703-7", L_PO2, 0},         /* Oxygen [Partial pressure] in Arterial blood */
    {"11556-8", L_PO2, 0},        /* Oxygen [Partial pressure] in Blood */
    {"2019-8", L_PCO2, 0},        /* Carbon dioxide [Partial pressure] in Arterial blood */
    {"11557-6", L_PCO2, 0},       /* Carbon dioxide [Partial pressure] in Blood */
    {"2744-1", L_PH, 0},          /* pH of Arterial blood */
    {"11558-4", L_PH, 0},         /* pH of Blood */
    {"59408-5", L_SPO2, 0},       /* Oxygen saturation in Arterial blood by Pulse oximetry */
    {"2708-6", L_SPO2, 0},        /* Oxygen saturation in Arterial blood */
    {"20564-1", L_SPO2, 0},       /* Oxygen saturation in Blood */
    {"8310-5", L_TEMPERATURE, 0}, /* Body temperature */
    {"8331-1", L_TEMPERATURE, 0}, /* Oral temperature */
    {"8867-4", L_HEART_RATE, 0},  /* Heart rate */
    {"9279-1", L_RESP_RATE, 0},   /* Respiratory rate */
    {"8480-6", L_SBP, 0},         /* Systolic blood pressure */
    {"8462-4", L_DBP, 0},         /* Diastolic blood pressure */
};

typedef struct name_row {
    const char *name; /* normalized: lowercase, '-' '_' as spaces, single spaces */
    int lab;
    double molar_mass;
} name_row;

/* Exact synonyms as labs and exports name them; anything else stays unknown. */
static const name_row names[] = {
    {"glucose", L_GLUCOSE, 0}, {"blood glucose", L_GLUCOSE, 0}, {"glu", L_GLUCOSE, 0},
    {"creatinine", L_CREATININE, 0}, {"creat", L_CREATININE, 0}, {"crea", L_CREATININE, 0},
    {"urea", L_UREA, 0}, {"bun", L_UREA, MM_BUN}, {"urea nitrogen", L_UREA, MM_BUN},
    {"blood urea nitrogen", L_UREA, MM_BUN},
    {"sodium", L_SODIUM, 0}, {"na", L_SODIUM, 0}, {"potassium", L_POTASSIUM, 0}, {"k", L_POTASSIUM, 0},
    {"chloride", L_CHLORIDE, 0}, {"cl", L_CHLORIDE, 0},
    {"bicarbonate", L_BICARBONATE, 0}, {"hco3", L_BICARBONATE, 0}, {"total co2", L_BICARBONATE, 0},
    {"co2", L_BICARBONATE, 0}, {"carbon dioxide", L_BICARBONATE, 0},
    {"calcium", L_CALCIUM, 0}, {"ca", L_CALCIUM, 0},
    {"hemoglobin", L_HEMOGLOBIN, 0}, {"haemoglobin", L_HEMOGLOBIN, 0}, {"hgb", L_HEMOGLOBIN, 0},
    {"hb", L_HEMOGLOBIN, 0},
    {"hematocrit", L_HEMATOCRIT, 0}, {"haematocrit", L_HEMATOCRIT, 0}, {"hct", L_HEMATOCRIT, 0},
    {"wbc", L_WBC, 0}, {"leukocytes", L_WBC, 0}, {"leucocytes", L_WBC, 0}, {"leukocyte count", L_WBC, 0},
    {"white blood cells", L_WBC, 0}, {"white blood cell count", L_WBC, 0},
    {"neutrophils", L_NEUT_ABS, 0}, {"neutrophil count", L_NEUT_ABS, 0}, {"anc", L_NEUT_ABS, 0},
    {"neutrophils %", L_NEUT_PCT, 0}, {"neutrophil %", L_NEUT_PCT, 0},
    {"lymphocytes", L_LYMPH_ABS, 0}, {"lymphocyte count", L_LYMPH_ABS, 0}, {"alc", L_LYMPH_ABS, 0},
    {"lymphocytes %", L_LYMPH_PCT, 0}, {"lymphocyte %", L_LYMPH_PCT, 0},
    {"platelets", L_PLATELETS, 0}, {"platelet count", L_PLATELETS, 0}, {"plt", L_PLATELETS, 0},
    {"crp", L_CRP, 0}, {"c reactive protein", L_CRP, 0}, {"hs crp", L_CRP, 0},
    {"procalcitonin", L_PROCALCITONIN, 0}, {"pct", L_PROCALCITONIN, 0},
    {"d dimer", L_DDIMER, 0}, {"ddimer", L_DDIMER, 0}, {"d dimer feu", L_DDIMER_FEU, 0},
    {"d dimer ddu", L_DDIMER_DDU, 0},
    {"ferritin", L_FERRITIN, 0},
    {"ldh", L_LDH, 0}, {"ld", L_LDH, 0}, {"lactate dehydrogenase", L_LDH, 0},
    {"troponin i", L_TROPONIN_I, 0}, {"tni", L_TROPONIN_I, 0}, {"hs tni", L_TROPONIN_I, 0},
    {"troponin t", L_TROPONIN_T, 0}, {"tnt", L_TROPONIN_T, 0}, {"hs tnt", L_TROPONIN_T, 0},
    {"bnp", L_BNP, 0}, {"nt probnp", L_NTPROBNP, 0}, {"ntprobnp", L_NTPROBNP, 0},
    {"lactate", L_LACTATE, 0}, {"lactic acid", L_LACTATE, 0},
    {"albumin", L_ALBUMIN, 0}, {"alb", L_ALBUMIN, 0},
    {"bilirubin", L_BILIRUBIN, 0}, {"total bilirubin", L_BILIRUBIN, 0}, {"bilirubin total", L_BILIRUBIN, 0},
    {"tbil", L_BILIRUBIN, 0},
    {"alt", L_ALT, 0}, {"sgpt", L_ALT, 0}, {"alanine aminotransferase", L_ALT, 0},
    {"ast", L_AST, 0}, {"sgot", L_AST, 0}, {"aspartate aminotransferase", L_AST, 0},
    {"inr", L_INR, 0},
    {"po2", L_PO2, 0}, {"pao2", L_PO2, 0}, {"pco2", L_PCO2, 0}, {"paco2", L_PCO2, 0}, {"ph", L_PH, 0},
    {"spo2", L_SPO2, 0}, {"oxygen saturation", L_SPO2, 0}, {"o2 saturation", L_SPO2, 0},
    {"temperature", L_TEMPERATURE, 0}, {"body temperature", L_TEMPERATURE, 0}, {"temp", L_TEMPERATURE, 0},
    {"heart rate", L_HEART_RATE, 0}, {"pulse", L_HEART_RATE, 0}, {"hr", L_HEART_RATE, 0},
    {"respiratory rate", L_RESP_RATE, 0}, {"resp rate", L_RESP_RATE, 0}, {"rr", L_RESP_RATE, 0},
    {"systolic blood pressure", L_SBP, 0}, {"sbp", L_SBP, 0},
    {"diastolic blood pressure", L_DBP, 0}, {"dbp", L_DBP, 0},
};

int rf_lab_count(void)
{
    return L_COUNT;
}

const rf_lab_def *rf_lab_def_get(int id)
{
    return id >= 0 && id < L_COUNT ? &lab_rows[id].def : NULL;
}

int rf_lab_by_key(const char *key)
{
    for (int i = 0; key && i < L_COUNT; i++)
        if (strcmp(lab_rows[i].def.key, key) == 0)
            return i;
    return -1;
}

int labs_lab_by_loinc(const char *code, double *molar_mass)
{
    *molar_mass = 0;
    for (size_t i = 0; code && i < sizeof loincs / sizeof loincs[0]; i++)
        if (strcmp(loincs[i].code, code) == 0) {
            *molar_mass = loincs[i].molar_mass;
            return loincs[i].lab;
        }
    return -1;
}

const char *labs_loinc_at(size_t i, int *lab)
{
    if (i >= sizeof loincs / sizeof loincs[0])
        return NULL;
    *lab = loincs[i].lab;
    return loincs[i].code;
}

int rf_lab_by_loinc(const char *code)
{
    double mm;
    return labs_lab_by_loinc(code, &mm);
}

bool labs_lab_nonneg(int id)
{
    return id >= 0 && id < L_COUNT && !lab_rows[id].signed_scale;
}

bool labs_lab_unitless(int id)
{
    return id >= 0 && id < L_COUNT && lab_rows[id].unitless;
}

int labs_lab_by_name(const char *name, const char *unit, double *molar_mass)
{
    *molar_mass = 0;
    if (!name)
        return -1;
    char norm[96];
    size_t n = 0;
    bool space = true; /* drops leading spaces and collapses runs */
    for (const char *p = name; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        if (c == '-' || c == '_' || c == ' ' || c == '\t' || c == '(' || c == ')' || c == '.') {
            if (!space && n < sizeof norm - 1)
                norm[n++] = ' ';
            space = true;
            continue;
        }
        if (n >= sizeof norm - 1)
            return -1;
        norm[n++] = c;
        space = false;
    }
    while (n && norm[n - 1] == ' ')
        n--;
    norm[n] = 0;
    int id = -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, norm) == 0) {
            id = names[i].lab;
            *molar_mass = names[i].molar_mass;
            break;
        }
    if (id < 0)
        return -1;
    unit_info u;
    bool known = unit && *unit && unit_parse(unit, &u);
    /* the unit says which twin a bare name meant: "neutrophils" in % or in 10^9/L */
    if (lab_rows[id].twin >= 0 && known) {
        int twin = lab_rows[id].twin;
        unit_info canon;
        unit_parse(lab_rows[id].def.unit, &canon);
        if (u.d != canon.d)
            id = twin;
    }
    if (id == L_DDIMER && known && u.b != B_NONE)
        id = u.b == B_FEU ? L_DDIMER_FEU : L_DDIMER_DDU;
    return id;
}

/* ---- conversion -------------------------------------------------------------- */

labs_conv labs_unit_conversion(int id, const char *unit, double molar_mass, double *factor, double *offset,
                               double *used_mm)
{
    *factor = 1, *offset = 0, *used_mm = 0;
    if (id < 0 || id >= L_COUNT)
        return LABS_CONV_UNCONVERTIBLE;
    const lab_row *lab = &lab_rows[id];
    unit_info to;
    if (!unit_parse(lab->def.unit, &to))
        return LABS_CONV_UNCONVERTIBLE; /* the table is checked by tests; never here */
    const char *p = unit;
    while (p && (*p == ' ' || *p == '\t'))
        p++;
    if (!p || !*p)
        return lab->unitless ? LABS_CONV_OK : LABS_CONV_MISSING_UNIT;
    unit_info from;
    if (!unit_parse(unit, &from))
        return LABS_CONV_UNKNOWN_UNIT;
    /* FEU and DDU differ by about 2x, assay-dependent: never converted into each other */
    if (from.b != B_NONE && from.b != lab->b)
        return LABS_CONV_UNCONVERTIBLE;
    double mm = molar_mass > 0 ? molar_mass : lab->molar_mass;
    double chem = 1; /* from base units of from.d to base units of to.d */
    if (from.d == to.d) {
        chem = 1;
    } else if (from.d == D_MASS && to.d == D_AMOUNT && mm > 0) {
        chem = 1 / mm, *used_mm = mm;
    } else if (from.d == D_AMOUNT && to.d == D_MASS && mm > 0) {
        chem = mm, *used_mm = mm;
    } else if (from.d == D_EQ && to.d == D_AMOUNT && lab->charge > 0) {
        chem = 1.0 / lab->charge;
    } else if (from.d == D_EQ && to.d == D_MASS && lab->charge > 0 && mm > 0) {
        chem = mm / lab->charge, *used_mm = mm;
    } else {
        return LABS_CONV_UNCONVERTIBLE;
    }
    /* value -> base: v * f + off; base -> canonical: (b - to.off) / to.f */
    *factor = from.f * chem / to.f;
    *offset = (from.off * chem - to.off) / to.f;
    return LABS_CONV_OK;
}

int rf_lab_convert(int id, double value, const char *unit, double molar_mass, double *out, double *factor,
                   double *offset, rf_err *err)
{
    double f, off, mm;
    if (id < 0 || id >= L_COUNT)
        return rf_err_set(err, RF_EINVAL, "lab id %d is not in the table (0..%d)", id, L_COUNT - 1);
    labs_conv c = labs_unit_conversion(id, unit, molar_mass, &f, &off, &mm);
    const char *key = lab_rows[id].def.key, *to = lab_rows[id].def.unit;
    switch (c) {
    case LABS_CONV_OK:
        break;
    case LABS_CONV_UNKNOWN_UNIT:
        return rf_err_set(err, RF_EUNSUP, "%s: unit '%.64s' is not one radfuse knows", key, unit);
    case LABS_CONV_MISSING_UNIT:
        return rf_err_set(err, RF_EUNSUP, "%s: no unit given (the lab's unit is %s)", key, to);
    case LABS_CONV_UNCONVERTIBLE:
        return rf_err_set(err, RF_EUNSUP, "%s: unit '%.64s' cannot be converted to %s", key, unit, to);
    }
    if (out)
        *out = value * f + off;
    if (factor)
        *factor = f;
    if (offset)
        *offset = off;
    return RF_OK;
}

const char *rf_lab_flag_name(uint32_t bit)
{
    static const char *const flag_names[RF_LAB_FLAG_BITS] = {
        "low", "high", "critical", "abnormal", "unknown-lab", "by-name", "unknown-unit",
        "unit-unconvertible", "missing-unit", "text-value", "no-value", "censored", "missing-range",
        "range-unparsed", "bad-time", "bad-code", "flag-conflict", "repeated",
    };
    for (int i = 0; i < RF_LAB_FLAG_BITS; i++)
        if (bit == (1u << i))
            return flag_names[i];
    return NULL;
}
