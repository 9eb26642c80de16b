fn main() {
    println!("ft42: not yet built");
}
