/* Cortex-M startup for deploybench firmware running under QEMU with semihosting.
 *
 * Provides the vector table, .data/.bss initialisation, FPU enable, the newlib semihosting
 * monitor set-up and fault handlers that report the faulting PC through semihosting, then exit
 * with DEPLOYBENCH_FAULT_EXIT so the host never waits for a watchdog on a crashed model.
 */
#include <stdint.h>
#include <stdlib.h>

#define DEPLOYBENCH_FAULT_EXIT 3

/* Semihosting operations (ARM "Semihosting for AArch32 and AArch64", version 2.0). */
#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

extern uint32_t __StackTop;
extern uint32_t __data_load;
extern uint32_t __data_start;
extern uint32_t __data_end;
extern uint32_t __bss_start;
extern uint32_t __bss_end;

extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void Reset_Handler(void);
void Default_Handler(void);
void NMI_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void SecureFault_Handler(void);
void fault_report(const uint32_t *frame, uint32_t kind);

/* -nostartfiles drops crti/crtn; __libc_init_array still references these. */
void _init(void) {}
void _fini(void) {}

__attribute__((section(".vectors"), used)) void (*const deploybench_vectors[16])(void) = {
    (void (*)(void))(&__StackTop),
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    SecureFault_Handler, /* reserved before ARMv8-M */
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* CP10/CP11 full access before the first FP instruction (CPACR, ARMv7-M ARM B3.2.20). */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    /* Separate MemManage/BusFault/UsageFault handlers (SHCSR) so the report names the cause
       instead of an escalated HardFault. */
    *(volatile uint32_t *)0xE000ED24u |= (1u << 16) | (1u << 17) | (1u << 18);
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0u;
    }
    initialise_monitor_handles();
    __libc_init_array();
    exit(main());
}

static void semihost_exit(int code)
{
    /* SYS_EXIT_EXTENDED carries the status on AArch32 (QEMU supports it); plain SYS_EXIT
       would only say success/failure. */
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    semihost(SYS_EXIT_EXTENDED, block);
    semihost(SYS_EXIT, (const void *)(uintptr_t)ADP_STOPPED_APPLICATION_EXIT);
    for (;;) {
    }
}

static char *put_hex(char *out, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    *out++ = '0';
    *out++ = 'x';
    for (int shift = 28; shift >= 0; shift -= 4) {
        *out++ = digits[(value >> shift) & 0xFu];
    }
    return out;
}

static char *put_str(char *out, const char *text)
{
    while (*text != '\0') {
        *out++ = *text++;
    }
    return out;
}

/* Report without newlib: the fault may have happened inside it (heap, stdio). */
void fault_report(const uint32_t *frame, uint32_t kind)
{
    static const char *const names[] = {"HardFault", "MemManage", "BusFault", "UsageFault",
                                        "SecureFault", "NMI", "UnexpectedIRQ"};
    char line[160];
    char *p = put_str(line, "\nDEPLOYBENCH-FAULT: ");
    p = put_str(p, names[kind < 7u ? kind : 6u]);
    p = put_str(p, " pc=");
    p = put_hex(p, frame[6]);
    p = put_str(p, " lr=");
    p = put_hex(p, frame[5]);
    p = put_str(p, " cfsr=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED28u);
    p = put_str(p, " hfsr=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED2Cu);
    p = put_str(p, " mmfar=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED34u);
    p = put_str(p, " bfar=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED38u);
    p = put_str(p, "\n");
    *p = '\0';
    semihost(SYS_WRITE0, line);
    semihost_exit(DEPLOYBENCH_FAULT_EXIT);
}

/* The stacked frame is on MSP or PSP depending on EXC_RETURN bit 2. ARMv6-M instructions
 * only (no IT blocks, no immediate TST, short B range), so the same startup builds for a
 * Cortex-M0 as for the ARMv7-M and ARMv8-M cores. */
#define FAULT_ENTRY(name, kind)                                                                   \
    __attribute__((naked)) void name(void)                                                        \
    {                                                                                             \
        __asm__ volatile("movs r0, #4\n\t"                                                         \
                         "mov r1, lr\n\t"                                                          \
                         "tst r0, r1\n\t"                                                          \
                         "bne 1f\n\t"                                                              \
                         "mrs r0, msp\n\t"                                                         \
                         "b 2f\n"                                                                   \
                         "1:\n\t"                                                                  \
                         "mrs r0, psp\n"                                                            \
                         "2:\n\t"                                                                  \
                         "movs r1, #" #kind "\n\t"                                                \
                         "ldr r2, =fault_report\n\t"                                               \
                         "bx r2\n\t"                                                               \
                         ".ltorg\n\t");                                                            \
    }

FAULT_ENTRY(HardFault_Handler, 0)
FAULT_ENTRY(MemManage_Handler, 1)
FAULT_ENTRY(BusFault_Handler, 2)
FAULT_ENTRY(UsageFault_Handler, 3)
FAULT_ENTRY(SecureFault_Handler, 4)
FAULT_ENTRY(NMI_Handler, 5)
FAULT_ENTRY(Default_Handler, 6)
