; virtbalance lab guest with a writable disk: a 512-byte boot sector that keeps writing a counter.
;
; Each write puts "VBCN" and the next counter value (32 bits, little-endian) at the start of sector
; 1 + (counter mod RING) of its own boot disk through the BIOS (int 13h, extended write, LBA). Only
; once the BIOS call has returned without error is the value acknowledged: then it goes to COM1 as
; "W<8 hex digits>\n". A failed write prints "E<2 hex digits>\n" (the BIOS status) and is retried with
; the same value, so every acknowledged value is on the disk unless the disk lost it.
;
; WRITES_PER_TICK writes per BIOS timer tick (18.2 Hz), then a wait for the next tick: a steady
; dirty rate whatever the CPU load.
;
; Its CPU load is the load-dial guest's: digit key n makes it wait by spinning in n of every 9 ticks
; and by halting in the rest (0: idle). It writes "R" once it runs and echoes each digit as "L<n>".

bits 16
org 0x7c00

%include "common.inc"
RING equ 32768              ; counter sectors 1..RING (16 MiB); the disk is larger
WRITES_PER_TICK equ 4
BUFFER equ 0x8000           ; one sector: "VBCN", counter, zeros

start:
    boot_start
    mov [drive], dl         ; the BIOS boots with the boot drive in DL
    mov di, BUFFER          ; the sector buffer: zeros, then the magic
    mov cx, 256
    xor ax, ax
    rep stosw
    mov dword [BUFFER], 'VBCN'
    mov al, 'R'
    call putc
    mov al, 10
    call putc

main:
    mov ah, 0x01            ; a digit key: echo it as the load-dial guest does
    int 0x16
    jz .write
    xor ah, ah
    int 0x16
    cmp al, '0'
    jb main
    cmp al, '9'
    ja main
    push ax
    sub al, '0'
    mov [level], al
    mov al, 'L'
    call putc
    pop ax
    call putc
    mov al, 10
    call putc
    jmp main

.write:
    mov eax, [acked]
    inc eax
    mov [BUFFER + 4], eax
    and eax, RING - 1
    inc eax
    mov [dap_lba], eax
    mov si, dap
    mov ax, 0x4300          ; extended write, no verify
    mov dl, [drive]
    int 0x13
    jc .failed
    mov eax, [BUFFER + 4]   ; the BIOS returned: this value is on the disk
    mov [acked], eax
    mov al, 'W'
    call putc
    mov eax, [acked]
    mov cx, 8
.digit:
    rol eax, 4
    push eax
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .emit
    add al, 'a' - '0' - 10
.emit:
    call putc
    pop eax
    loop .digit
    mov al, 10
    call putc
    dec byte [burst]
    jnz main
    mov byte [burst], WRITES_PER_TICK
    tick_phase
    jb .spin
    hlt                     ; idle phase: sleep until the next timer tick
    jmp main
.spin:                      ; busy phase: the same wait, spinning
    mov ax, [TICKS]
.tick:
    cmp ax, [TICKS]
    je .tick
    jmp main

.failed:
    mov bl, ah              ; the BIOS status
    mov al, 'E'
    call putc
    mov al, bl
    shr al, 4
    call hexc
    mov al, bl
    and al, 0x0f
    call hexc
    mov al, 10
    call putc
    hlt
    jmp main

hexc:                       ; AL (0..15) as one hex digit on COM1
    add al, '0'
    cmp al, '9'
    jbe putc
    add al, 'a' - '0' - 10
putc_routine

drive: db 0x80
level: db 0
burst: db WRITES_PER_TICK
acked: dd 0
dap:                        ; disk address packet of the extended write
    db 16, 0
    dw 1                    ; one sector
    dw BUFFER, 0            ; offset, segment
dap_lba:
    dd 0, 0

times 510 - ($ - $$) db 0
dw 0xaa55
