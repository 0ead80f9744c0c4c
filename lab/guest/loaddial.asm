; virtbalance lab guest: a 512-byte boot sector whose CPU load is a dial set from the host.
;
; The host presses a digit key (virsh send-key / virDomainSendKey). Digit n makes the guest spin for
; n of every 9 BIOS timer ticks (18.2 Hz, the counter at 0000:046C) and halt for the rest, so 0 is idle
; and 9 is one busy host core under TCG. The level lives in guest RAM, so it survives live migration.
;
; On COM1 the guest writes "R" once it is polling the keyboard (keys sent earlier are lost), then
; "L<n>" each time the level changes: the host reads that from the serial log to confirm a key landed.

bits 16
org 0x7c00

%include "common.inc"

start:
    boot_start
    mov al, 'R'
    call putc
    mov al, 10
    call putc

main:
    mov ah, 0x01            ; keystroke waiting?
    int 0x16
    jz .no_key
    xor ah, ah              ; take it from the buffer
    int 0x16
    cmp al, '0'
    jb main
    cmp al, '9'
    ja main
    sub al, '0'
    mov [level], al
    mov al, 'L'             ; report the new level: "L<n>\n"
    call putc
    mov al, [level]
    add al, '0'
    call putc
    mov al, 10
    call putc
    jmp main

.no_key:
    tick_phase
    jb main                 ; busy phase: keep polling, which is the spinning
    hlt                     ; idle phase: sleep until the next timer or keyboard interrupt
    jmp main

putc_routine

level: db 0

times 510 - ($ - $$) db 0
dw 0xaa55
