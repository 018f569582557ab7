/* Dates and times as lab sources write them: ISO 8601 / FHIR dateTime and HL7 v2 DTM. */
#include <stdio.h>
#include <string.h>

#include "radfuse/labs.h"

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* n digits at *p (within end) as an integer, advancing; -1 when not n digits. */
static int digits(const char **p, const char *end, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || **p < '0' || **p > '9')
            return -1;
        v = v * 10 + (*(*p)++ - '0');
    }
    return v;
}

static bool at(const char *p, const char *end, char c)
{
    return p < end && *p == c;
}

/* Fraction digits after a '.', up to 9 kept (more are read and dropped). */
static bool fraction(const char **p, const char *end, rf_time *t)
{
    int n = 0;
    int32_t ns = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        if (n < 9) {
            ns = ns * 10 + (**p - '0');
            n++;
        }
        (*p)++;
    }
    if (n == 0)
        return false;
    t->frac_digits = n;
    for (int i = n; i < 9; i++)
        ns *= 10;
    t->nanos = ns;
    return true;
}

static bool valid(const rf_time *t)
{
    if (t->year < 1)
        return false;
    if (t->precision >= RF_TIME_MONTH && (t->month < 1 || t->month > 12))
        return false;
    if (t->precision >= RF_TIME_DAY && (t->day < 1 || t->day > days_in_month(t->year, t->month)))
        return false;
    if (t->precision >= RF_TIME_HOUR && (t->hour < 0 || t->hour > 23))
        return false;
    if (t->precision >= RF_TIME_MINUTE && (t->minute < 0 || t->minute > 59))
        return false;
    if (t->precision >= RF_TIME_SECOND && (t->second < 0 || t->second > 60))
        return false;
    if (t->has_tz && (t->tz_minutes < -14 * 60 || t->tz_minutes > 14 * 60))
        return false;
    return true;
}

int rf_time_parse_iso(const char *s, size_t len, rf_time *out)
{
    rf_time t = {0};
    const char *p = s, *end = s + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if ((t.year = digits(&p, end, 4)) < 0)
        return RF_EFORMAT;
    t.precision = RF_TIME_YEAR;
    if (at(p, end, '-')) {
        p++;
        if ((t.month = digits(&p, end, 2)) < 0)
            return RF_EFORMAT;
        t.precision = RF_TIME_MONTH;
        if (at(p, end, '-')) {
            p++;
            if ((t.day = digits(&p, end, 2)) < 0)
                return RF_EFORMAT;
            t.precision = RF_TIME_DAY;
            if (at(p, end, 'T') || at(p, end, ' ')) {
                p++;
                if ((t.hour = digits(&p, end, 2)) < 0 || !at(p, end, ':'))
                    return RF_EFORMAT;
                p++;
                if ((t.minute = digits(&p, end, 2)) < 0)
                    return RF_EFORMAT;
                t.precision = RF_TIME_MINUTE;
                if (at(p, end, ':')) {
                    p++;
                    if ((t.second = digits(&p, end, 2)) < 0)
                        return RF_EFORMAT;
                    t.precision = RF_TIME_SECOND;
                    if (at(p, end, '.')) {
                        p++;
                        if (!fraction(&p, end, &t))
                            return RF_EFORMAT;
                    }
                }
                if (at(p, end, 'Z')) {
                    p++;
                    t.has_tz = true;
                } else if (at(p, end, '+') || at(p, end, '-')) {
                    int sign = *p++ == '-' ? -1 : 1;
                    int h = digits(&p, end, 2), m = 0;
                    if (h < 0)
                        return RF_EFORMAT;
                    bool colon = at(p, end, ':');
                    if (colon)
                        p++;
                    if ((p < end || colon) && (m = digits(&p, end, 2)) < 0)
                        return RF_EFORMAT;
                    if (m > 59)
                        return RF_EFORMAT;
                    t.has_tz = true;
                    t.tz_minutes = sign * (h * 60 + m);
                }
            }
        }
    }
    if (p != end || !valid(&t))
        return RF_EFORMAT;
    *out = t;
    return RF_OK;
}

int rf_time_parse_hl7(const char *s, size_t len, rf_time *out)
{
    rf_time t = {0};
    const char *p = s, *end = s + len;
    static const rf_time_precision steps[] = {RF_TIME_MONTH, RF_TIME_DAY, RF_TIME_HOUR, RF_TIME_MINUTE,
                                              RF_TIME_SECOND};
    int *fields[] = {&t.month, &t.day, &t.hour, &t.minute, &t.second};
    if ((t.year = digits(&p, end, 4)) < 0)
        return RF_EFORMAT;
    t.precision = RF_TIME_YEAR;
    for (int i = 0; i < 5 && p < end && *p >= '0' && *p <= '9'; i++) {
        if ((*fields[i] = digits(&p, end, 2)) < 0)
            return RF_EFORMAT;
        t.precision = steps[i];
    }
    if (t.precision == RF_TIME_SECOND && at(p, end, '.')) {
        p++;
        if (!fraction(&p, end, &t))
            return RF_EFORMAT;
    }
    if (at(p, end, '+') || at(p, end, '-')) {
        int sign = *p++ == '-' ? -1 : 1;
        int h = digits(&p, end, 2), m = digits(&p, end, 2);
        if (h < 0 || m < 0 || m > 59)
            return RF_EFORMAT;
        t.has_tz = true;
        t.tz_minutes = sign * (h * 60 + m);
    }
    if (p != end || !valid(&t))
        return RF_EFORMAT;
    *out = t;
    return RF_OK;
}

size_t rf_time_format(const rf_time *t, char *buf, size_t cap)
{
    char b[48];
    int n = 0;
    switch (t->precision) {
    case RF_TIME_NONE:
        break;
    case RF_TIME_YEAR:
        n = snprintf(b, sizeof b, "%04d", t->year);
        break;
    case RF_TIME_MONTH:
        n = snprintf(b, sizeof b, "%04d-%02d", t->year, t->month);
        break;
    case RF_TIME_DAY:
        n = snprintf(b, sizeof b, "%04d-%02d-%02d", t->year, t->month, t->day);
        break;
    case RF_TIME_HOUR:
        n = snprintf(b, sizeof b, "%04d-%02d-%02dT%02d", t->year, t->month, t->day, t->hour);
        break;
    case RF_TIME_MINUTE:
        n = snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d", t->year, t->month, t->day, t->hour, t->minute);
        break;
    case RF_TIME_SECOND:
        n = snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d", t->year, t->month, t->day, t->hour, t->minute,
                     t->second);
        if (t->frac_digits > 0) {
            int32_t f = t->nanos;
            for (int i = t->frac_digits; i < 9; i++)
                f /= 10;
            n += snprintf(b + n, sizeof b - (size_t)n, ".%0*d", t->frac_digits, (int)f);
        }
        break;
    }
    if (t->precision >= RF_TIME_HOUR && t->has_tz) {
        if (t->tz_minutes == 0)
            n += snprintf(b + n, sizeof b - (size_t)n, "Z");
        else {
            int m = t->tz_minutes < 0 ? -t->tz_minutes : t->tz_minutes;
            n += snprintf(b + n, sizeof b - (size_t)n, "%c%02d:%02d", t->tz_minutes < 0 ? '-' : '+', m / 60, m % 60);
        }
    }
    if (cap) {
        size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
        memcpy(buf, b, k);
        buf[k] = 0;
    }
    return (size_t)n;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t rf_time_unix(const rf_time *t, bool *zoned)
{
    if (zoned)
        *zoned = t->has_tz;
    if (t->precision == RF_TIME_NONE)
        return 0;
    int m = t->precision >= RF_TIME_MONTH ? t->month : 1;
    int d = t->precision >= RF_TIME_DAY ? t->day : 1;
    int64_t s = days_from_civil(t->year, m, d) * 86400 + (int64_t)t->hour * 3600 + t->minute * 60 + t->second;
    return s - (int64_t)(t->has_tz ? t->tz_minutes : 0) * 60;
}
