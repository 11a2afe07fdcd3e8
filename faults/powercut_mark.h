/* powercut_mark.h: markers a workload uses to tell libpowercut where its operations begin and
 * end; pc_mark is weak, so a program built with these calls runs unchanged without the shim. */
#ifndef POWERCUT_MARK_H
#define POWERCUT_MARK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Defined by libpowercut (preloaded or linked in); a null address when it is absent. */
extern void pc_mark(int kind, uint64_t op, const char *label) __attribute__((weak));

enum { PC_MARK_BEGIN_ = 1, PC_MARK_END_ = 2, PC_MARK_NOTE_ = 3 };

/* Every step between begin(op) and end(op) is attributed to operation op (innermost wins). */
static inline void pc_mark_begin(uint64_t op, const char *label)
{
    if (pc_mark) pc_mark(PC_MARK_BEGIN_, op, label);
}
static inline void pc_mark_end(uint64_t op)
{
    if (pc_mark) pc_mark(PC_MARK_END_, op, "");
}
static inline void pc_mark_note(const char *text)
{
    if (pc_mark) pc_mark(PC_MARK_NOTE_, 0, text);
}

#ifdef __cplusplus
}
#endif
#endif
